"""Member status per room (``MEMBER_STATUS_UPDATE``): typing, processing, muted.

Keeps the last status of each (identity, room) so that a session end can
reset exactly the rooms where a member was not idle, instead of flooding
every room it belongs to.
"""

from __future__ import annotations

from newage.clock import iso_now
from newage.domain.ports.delivery import Outbox, room_addr
from newage.protocol.names import MONITOR_ROOM, Ev, MemberStatus, Namespace
from newage.protocol.outbound import MemberStatus as MemberStatusPayload


class StatusBoard:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._status: dict[str, dict[str, MemberStatus]] = {}  # identity -> room -> status

    def get(self, identity: str, room: str) -> MemberStatus:
        return self._status.get(identity, {}).get(room, MemberStatus.IDLE)

    async def set(self, identity: str, room: str, status: MemberStatus) -> None:
        rooms = self._status.setdefault(identity, {})
        if status is MemberStatus.IDLE:
            rooms.pop(room, None)
            if not rooms:
                self._status.pop(identity, None)
        else:
            rooms[room] = status
        payload: MemberStatusPayload = {
            "identity": identity,
            "roomName": room,
            "status": status.value,
            "timestamp": iso_now(),
        }
        self.outbox.emit(
            Namespace.LLM,
            Ev.MEMBER_STATUS_UPDATE,
            payload,
            [room_addr(room), room_addr(MONITOR_ROOM)],
        )

    async def idle_everywhere(self, identity: str, *, keep_muted: bool = True) -> None:
        for room, status in list(self._status.get(identity, {}).items()):
            if keep_muted and status is MemberStatus.MUTED:
                continue
            await self.set(identity, room, MemberStatus.IDLE)

    def forget_room(self, room: str) -> None:
        for identity in list(self._status):
            self._status[identity].pop(room, None)
            if not self._status[identity]:
                del self._status[identity]
