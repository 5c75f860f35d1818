"""Muting: per room (by its moderators) or everywhere (by admins).

A mute is stored per (identity, room) with its expiry, so it survives
reconnects and restarts; expired mutes are lifted by a periodic sweep, which
also tells the member. A muted member's LLM requests into that room (or
anywhere, for a global mute) are refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from newage.clock import epoch_from_iso, iso_from_epoch
from newage.domain.identity.principal import Principal
from newage.domain.ops import audit
from newage.domain.ports.delivery import Outbox, identity_addr
from newage.domain.ports.records import MuteRecord
from newage.domain.ports.store import Store
from newage.domain.rooms.history import History
from newage.domain.rooms.model import require_can_act_on
from newage.domain.rooms.service import RoomService, valid_room_name
from newage.domain.rooms.status import StatusBoard
from newage.errors import bad_request, forbidden, not_found
from newage.protocol.names import FOREVER, SYSTEM_IDENTITY, Ev, MemberStatus, Namespace
from newage.protocol.outbound import MemberMuted, MemberUnmuted

MAX_DURATION = 10 * 365 * 24 * 3600  # ten years; a permanent mute is asked for by omitting it
NOTICE_NAMESPACES = (Namespace.LLM, Namespace.ROOMS)
UnmuteHook = Callable[[str, str | None], Awaitable[None]]


def _key(identity: str, room: str | None) -> tuple[str, str]:
    return identity, room or ""


def _seconds(duration: Any) -> int | None:
    """A mute's length; only an absent (or 0) duration means permanent, so
    a typo or an overflow never silences someone for good."""
    if duration is None or (type(duration) in (int, float) and duration == 0):
        return None
    if type(duration) not in (int, float) or not math.isfinite(duration):
        raise bad_request("duration must be a number of seconds.")
    if duration < 0 or duration > MAX_DURATION:
        raise bad_request(
            f"duration must be between 1 and {MAX_DURATION} seconds (omit it for a permanent mute)."
        )
    return max(1, int(duration))


class MuteService:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        rooms: RoomService,
        history: History,
        status: StatusBoard,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.rooms = rooms
        self.history = history
        self.status = status
        # several processes: the others reload the mutes from the store
        self.on_changed: Callable[[], None] = lambda: None
        self.mutes: dict[tuple[str, str], MuteRecord] = {}
        self.on_unmuted: list[UnmuteHook] = []

    async def load(self) -> None:
        """At start, and when another process changed the mutes."""
        self.mutes = {_key(m.identity, m.room): m for m in await self.store.load_mutes()}

    def muted(self, identity: str, room: str | None) -> MuteRecord | None:
        """The mute that silences ``identity`` in ``room`` (global or that room's)."""
        now = time.time()
        for key in (_key(identity, None), _key(identity, room)):
            record = self.mutes.get(key)
            if record is not None and epoch_from_iso(record.muted_until) > now:
                return record
        return None

    def view(self) -> list[MemberMuted]:
        return [_payload(m) for m in self.mutes.values()]

    def _check(self, target: str, room_name: str | None, actor: Principal) -> None:
        if room_name is None:
            if not actor.is_admin:
                raise forbidden("Only admins may mute everywhere; name a room.")
            return
        room = self.rooms.get(room_name)
        if target not in room.members:
            raise not_found("Client not in room")
        require_can_act_on(room, actor, target)

    async def mute(
        self, target: Any, room_name: Any, duration: Any, actor: Principal
    ) -> MuteRecord:
        target = valid_room_name(target)
        room = valid_room_name(room_name) if room_name is not None else None
        self._check(target, room, actor)
        seconds = _seconds(duration)  # None: permanent
        until = FOREVER if seconds is None else iso_from_epoch(time.time() + seconds)
        record = MuteRecord(target, until, actor.identity, room, seconds)
        await self.store.put_mute(record)
        self.mutes[_key(target, room)] = record
        self.on_changed()
        payload = _payload(record)
        for namespace in NOTICE_NAMESPACES:
            self.outbox.emit(namespace, Ev.MEMBER_MUTED, payload, [identity_addr(target)])
        if room is not None:
            await self.status.set(target, room, MemberStatus.MUTED)
            if seconds is None:
                text = f"[System] {target} has been permanently muted by {actor.identity}."
            else:
                text = (
                    f"[System] {target} has been muted by {actor.identity} for {seconds} seconds."
                )
            await self.history.system(room, text)
        audit.record("member.mute", target, room=room or "every room", until=until)
        return record

    async def unmute(self, target: Any, room_name: Any, actor: Principal | None) -> bool:
        target = valid_room_name(target)
        room = valid_room_name(room_name) if room_name is not None else None
        if actor is not None:
            self._check(target, room, actor)
        record = self.mutes.get(_key(target, room))
        if record is None:
            return False
        by = actor.identity if actor else SYSTEM_IDENTITY
        lifted = await self.store.delete_mute(target, room)
        self.mutes.pop(_key(target, room), None)
        if not lifted and actor is None:
            return False  # its time was up: another process lifted and announced it
        self.on_changed()
        payload: MemberUnmuted = {"identity": target, "unmutedBy": by, "roomName": room}
        for namespace in NOTICE_NAMESPACES:
            self.outbox.emit(namespace, Ev.MEMBER_UNMUTED, payload, [identity_addr(target)])
        if room is not None and room in self.rooms.rooms:
            await self.status.set(target, room, MemberStatus.IDLE)
            await self.history.system(room, f"[System] {target} has been unmuted by {by}.")
        for hook in self.on_unmuted:
            await hook(target, room)
        audit.record("member.unmute", target, room=room or "every room", actor=by)
        return True

    async def expire(self) -> int:
        """Lift every mute whose time is up; returns how many."""
        now = time.time()
        due = [m for m in self.mutes.values() if epoch_from_iso(m.muted_until) <= now]
        for record in due:
            await self.unmute(record.identity, record.room, None)
        return len(due)

    async def forget_room(self, room: str) -> None:
        for key in [k for k in self.mutes if k[1] == room]:
            await self.store.delete_mute(key[0], room)
            del self.mutes[key]


def _payload(record: MuteRecord) -> MemberMuted:
    return {
        "identity": record.identity,
        "mutedBy": record.muted_by,
        "mutedUntil": record.muted_until,
        "duration": record.duration_label,
        "roomName": record.room,
    }
