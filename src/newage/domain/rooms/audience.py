"""Who is addressed when something happens in a room."""

from __future__ import annotations

from collections.abc import Callable

from newage.domain.ports.delivery import identity_addr, room_addr
from newage.domain.rooms.relations import RelationService
from newage.protocol.names import MONITOR_ROOM
from newage.settings import Settings


class Audience:
    def __init__(self, settings: Callable[[], Settings], relations: RelationService) -> None:
        self.settings = settings
        self.relations = relations

    def of(self, room: str) -> list[str]:
        """Who hears about a room's messages: its members, the extensions
        assigned to it, and (when mirroring) the monitors."""
        return self.watchers(room) + [identity_addr(e) for e in self.relations.for_room(room)]

    def watchers(self, room: str) -> list[str]:
        """Who sees a room's live answers (streams, LLM_RESPONSE): members
        and monitors. Assigned extensions are not addressed here at all:
        under Free that is every extension, and looking each one up for
        every chunk made a relayed token cost O(extensions)."""
        if self.settings().mirror_to_monitors and room != MONITOR_ROOM:
            return [room_addr(room), room_addr(MONITOR_ROOM)]
        return [room_addr(room)]
