"""Personal rooms: one per identity, made on arrival, dropped when unused.

A part of :class:`~newage.domain.rooms.service.RoomService`, kept apart
because its rules (ownership caps, clean-up of abandoned rooms) are their
own concern.
"""

from __future__ import annotations

import time

from newage.clock import iso_from_epoch, iso_now
from newage.domain.identity.presence import Presence
from newage.domain.ports.records import MemberRecord
from newage.domain.ports.store import Store
from newage.domain.rooms.model import Room
from newage.errors import conflict
from newage.logs import log
from newage.protocol.names import RequestMode, Role
from newage.settings import LiveSettings


class PersonalRooms:
    store: Store
    presence: Presence
    live: LiveSettings
    rooms: dict[str, Room]

    def default_mode(self) -> RequestMode:
        raise NotImplementedError

    async def _insert(self, room: Room) -> None:
        raise NotImplementedError

    async def _remove(self, room: Room) -> None:
        raise NotImplementedError

    async def resync(self) -> None:
        raise NotImplementedError

    async def ensure_personal(
        self, identity: str, client_id: str | None = None, *, capped: bool = False
    ) -> Room | None:
        """The identity's personal room, made if missing. Made for another
        identity of ``client_id``, it counts as that client's (``createdBy``);
        ``capped`` (plain clients) refuses one past ``maxRoomsPerClient``."""
        room = self.rooms.get(identity)
        if room is None:
            owner = client_id or identity
            cap = self.live.current.max_rooms_per_client
            if capped and owner != identity and self.owned_by(owner) >= cap:
                raise conflict(
                    f"Client {owner} already has {cap} identity rooms (maxRoomsPerClient)."
                )
            now = iso_now()
            room = Room(
                identity,
                self.default_mode(),
                now,
                created_by=owner,
                personal_of=identity,
                members={identity: MemberRecord(identity, Role.MASTER, now)},
            )
            try:
                await self._insert(room)
            except Exception:
                # another process sharing the store made it first (a cluster)
                await self.resync()
                if identity not in self.rooms:
                    raise
                return self.rooms[identity]
            log.info("created personal room %s", identity)
            return room
        if identity in room.members:
            return room
        log.warning("room %r exists without its namesake as member: no personal room", identity)
        return None

    def owned_by(self, client_id: str) -> int:
        """Personal rooms a client made for its other identities."""
        return sum(
            1
            for room in self.rooms.values()
            if room.created_by == client_id and room.personal_of not in (None, client_id)
        )

    async def drop_unused_personal(self, identity: str, client_id: str) -> None:
        """An identity's session ended: its personal room goes if nothing was
        ever said in it and nobody else is in it, so a client switching
        identities does not leave a permanent room behind for each. The
        room named after the clientId itself stays (clients rely on it)."""
        room = self.rooms.get(identity)
        if (
            room is None
            or identity == client_id
            or room.personal_of != identity
            or set(room.members) != {identity}
            or await self.store.count_messages(identity) > 0
            or self.presence.is_present(identity)  # back while we counted
            or self.rooms.get(identity) is not room
        ):
            return
        await self._remove(room)
        log.info("removed the unused personal room of %s", identity)

    async def cleanup_personal(self, days: int) -> list[str]:
        """Delete the personal rooms of clients gone for ``days`` days: no
        session now, and nothing said there (or the room made) since."""
        cutoff = iso_from_epoch(time.time() - days * 86400)
        gone: list[str] = []
        for room in list(self.rooms.values()):
            owner = room.personal_of
            if owner is None or self.presence.is_present(owner):
                continue
            latest = await self.store.latest_messages(room.name, 1)
            last = str(latest[0].body.get("timestamp") or "") if latest else room.created_at
            if last and last < cutoff and room.name in self.rooms:
                await self._remove(room)
                gone.append(room.name)
        return gone
