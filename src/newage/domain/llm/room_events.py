"""What follows a room's changes elsewhere: its deletion, a new request mode,
and the original's opt-in context broadcast after every message."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from newage.domain.llm.chat import ChatService
from newage.domain.llm.thinking import Thinker
from newage.domain.ports.delivery import room_addr
from newage.domain.ports.store import Store
from newage.domain.rooms.history import History
from newage.domain.rooms.messages import MessageService
from newage.domain.rooms.model import Room
from newage.domain.rooms.mutes import MuteService
from newage.domain.rooms.relations import RelationService
from newage.domain.rooms.status import StatusBoard
from newage.protocol.names import RequestMode
from newage.settings import Settings


class RoomEvents:
    def __init__(
        self,
        settings: Callable[[], Settings],
        store: Store,
        history: History,
        messages: MessageService,
        thinker: Thinker,
        chat: ChatService,
        status_board: StatusBoard,
        mutes: MuteService,
        relations: RelationService,
    ) -> None:
        self.settings = settings
        self.store = store
        self.history = history
        self.messages = messages
        self.thinker = thinker
        self.chat = chat
        self.status_board = status_board
        self.mutes = mutes
        self.relations = relations

    async def deleted(self, room: Room) -> None:
        self.history.forget(room.name)
        await self.thinker.forget_room(room)
        self.status_board.forget_room(room.name)
        await self.mutes.forget_room(room.name)
        self.relations.forget_client_room(room.name)

    async def mode_changed(self, room: Room, previous: RequestMode) -> None:
        await self.thinker.mode_changed(room, previous)
        if previous is RequestMode.HOST_SUBMIT:
            await self.chat.forget_room(room.name)  # the guest queue goes with the mode

    async def recorded(self, room: str, kind: str) -> None:
        """Opt-in original behaviour: the whole paged context to every member
        after every request and response (newest paging wins per room)."""
        if self.settings().legacy_context_broadcast and kind != "system":
            total = await self.store.count_messages(room)
            self.messages.page_to(room_addr(room), room, str(uuid.uuid4()), total)
