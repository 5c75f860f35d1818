"""Conversational rooms: extensions that speak up on their own (docs/protocol.md).

Every ``conversationalCheckInterval`` ms each Conversational room whose timer
has passed thinks with probability ``conversationalThinkProbability``; then
its timer is set ``conversationalThinkInterval{Min,Max}`` ms ahead. A think
goes to one extension of the room (assigned to it or a member), never to a
muted one, nor to one already answering in that room. Unmuting an extension
makes its Conversational rooms think after ``postUnmuteThinkDelay`` ms.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from newage.domain.identity.presence import Presence
from newage.domain.llm.chat import ChatService
from newage.domain.llm.requests import Kind, LlmRequest, RequestTracker
from newage.domain.llm.routing import Router
from newage.domain.rooms.model import Room
from newage.domain.rooms.mutes import MuteService
from newage.domain.rooms.service import RoomService
from newage.logs import log
from newage.protocol.names import THINK_PREFIX, RequestMode
from newage.settings import LiveSettings

POST_UNMUTE = (
    "You were just unmuted. Review the recent conversation, considering this event, "
    "and respond naturally if appropriate. "
)


class Thinker:
    def __init__(
        self,
        rooms: RoomService,
        mutes: MuteService,
        presence: Presence,
        router: Router,
        tracker: RequestTracker,
        chat: ChatService,
        live: LiveSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.rooms = rooms
        self.mutes = mutes
        self.presence = presence
        self.router = router
        self.tracker = tracker
        self.chat = chat
        self.live = live
        self.rng = rng or random.Random()
        self.timers: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def interval(self) -> float:
        return self.live.current.conversational_check_interval / 1000

    async def tick(self) -> None:
        settings = self.live.current
        now = time.monotonic()
        low, high = settings.think_interval_ms
        for room in list(self.rooms.rooms.values()):
            if room.mode is not RequestMode.CONVERSATIONAL:
                continue
            if now <= self.timers.get(room.name, 0.0):
                continue
            if self.rng.random() < settings.conversational_think_probability:
                await self.think(room, "random")
            self.timers[room.name] = now + self.rng.uniform(low, high) / 1000

    async def think(self, room: Room, trigger: str, ext: str | None = None) -> LlmRequest | None:
        candidates = self.router.room_extensions(room)
        if ext is None and candidates:
            ext = self.rng.choice(candidates)
        if ext is None or ext not in candidates:
            return None
        if self.mutes.muted(ext, room.name):
            return None
        busy = [*self.tracker.queued(ext), *self.chat.queues.waiting(ext)]
        if any(r.room == room.name for r in busy):
            return None  # already answering in this room
        settings = self.live.current
        # the context the think is sent with (read now, kept for forward)
        if not await self.chat.history.latest(room.name, settings.extension_context_limit):
            return None
        instruction = settings.conversational_instruction
        if trigger == "post_unmute":
            instruction = settings.post_unmute_instruction or (POST_UNMUTE + instruction)
        request = LlmRequest(
            THINK_PREFIX + str(uuid.uuid4()), room.name, None, room.mode, Kind.THINK, None
        )
        self.tracker.add(request)
        await self.chat.forward(request, room, [ext], None, "THINK_REQUEST", instruction)
        log.info("%s thinks in %s (%s)", ext, room.name, trigger)
        return request

    async def unmuted(self, identity: str, room: str | None) -> None:
        session = self.presence.sessions.get(identity)
        if session is None or not session.principal.is_extension:
            return
        names = [room] if room is not None else self.rooms.rooms_of(identity)
        delay = self.live.current.post_unmute_think_delay / 1000

        async def later() -> None:
            await asyncio.sleep(delay)
            for name in names:
                target = self.rooms.rooms.get(name)
                if target is not None and target.mode is RequestMode.CONVERSATIONAL:
                    await self.think(target, "post_unmute", identity)

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def mode_changed(self, room: Room, previous: RequestMode) -> None:
        if previous is RequestMode.CONVERSATIONAL:
            self.timers.pop(room.name, None)

    async def forget_room(self, room: Room) -> None:
        self.timers.pop(room.name, None)
