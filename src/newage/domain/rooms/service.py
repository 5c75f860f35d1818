"""Rooms and memberships: the in-memory model, written through to the store.

Each operation checks permissions, commits to the store, updates memory,
mirrors the membership onto Socket.IO rooms, then notifies. A failure
before the commit changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from newage.clock import iso_now
from newage.domain.identity.presence import Presence
from newage.domain.identity.principal import Principal, require_admin
from newage.domain.ops import audit
from newage.domain.ports.delivery import Outbox, identity_addr, room_addr
from newage.domain.ports.records import MemberRecord
from newage.domain.ports.store import Store
from newage.domain.rooms.history import History
from newage.domain.rooms.model import (
    Room,
    is_reserved,
    require_can_act_on,
    require_master,
    require_moderator,
)
from newage.domain.rooms.personal import PersonalRooms
from newage.errors import bad_request, conflict, forbidden, not_found
from newage.protocol.names import (
    MONITOR_ROOM,
    Ev,
    MemberStatus,
    Namespace,
    RequestMode,
    Role,
    parse_mode,
)
from newage.protocol.outbound import (
    MemberJoined,
    MemberLeft,
    MemberRoleChanged,
    RoomCreated,
    RoomDeleted,
    RoomModeChanged,
    Warning,
)
from newage.settings import LiveSettings

_ROOM_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
NOTICE_NAMESPACES = (Namespace.ROOMS, Namespace.DEFAULT)
RoomHook = Callable[[Room], Awaitable[None]]


def valid_room_name(name: Any) -> str:
    if not isinstance(name, str) or not _ROOM_NAME.match(name) or name.strip() != name:
        raise bad_request("Invalid room name")
    return name


class RoomService(PersonalRooms):
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        presence: Presence,
        history: History,
        live: LiveSettings,
        reserved_names: Callable[[], set[str]],
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.presence = presence
        self.history = history
        self.live = live
        self.reserved_names = reserved_names  # identities/clientIds a new room may not take
        self.rooms: dict[str, Room] = {}
        self._of: dict[str, set[str]] = {}
        self.on_deleted: list[RoomHook] = []
        self.on_mode_changed: list[Callable[[Room, RequestMode], Awaitable[None]]] = []
        self.on_member_status: Callable[[str, str, MemberStatus], Awaitable[None]] | None = None
        # after each committed change: other processes sharing the store reload
        self.on_changed: Callable[[], None] = lambda: None

    def default_mode(self) -> RequestMode:
        return self.live.current.default_room_message_request_mode

    async def set_default_mode(self, value: Any, actor: Principal) -> RequestMode:
        """The mode new rooms get; a settings change (admins only, docs/security.md)."""
        mode = _mode(value)
        require_admin(actor, self.live.current.network_safe)
        await self.live.apply({"defaultRoomMessageRequestMode": mode.value})
        return mode

    # ------------------------------------------------------------------ loading
    async def load(self) -> None:
        for record in await self.store.load_rooms():
            room = Room.from_record(record)
            self.rooms[room.name] = room
            for identity in room.members:
                self._of.setdefault(identity, set()).add(room.name)
        if MONITOR_ROOM not in self.rooms:
            # nodes of a cluster starting at once on a new store all get here
            if await self.store.ensure_room(Room(MONITOR_ROOM, self.default_mode(), iso_now())):
                self.on_changed()
            await self.resync()

    async def resync(self) -> None:
        """Take the rooms and memberships from the store, which another
        process changed; Room objects others hold stay the same objects."""
        fresh = {r.name: Room.from_record(r) for r in await self.store.load_rooms()}
        for name in [n for n in self.rooms if n not in fresh]:
            del self.rooms[name]
        for name, room in fresh.items():
            known = self.rooms.get(name)
            if known is None:
                self.rooms[name] = room
            else:
                known.mode, known.personal_of = room.mode, room.personal_of
                known.members = room.members
        self._of = {}
        for room in self.rooms.values():
            for identity in room.members:
                self._of.setdefault(identity, set()).add(room.name)

    async def _insert(self, room: Room) -> None:
        await self.store.create_room(room)
        self.on_changed()
        self.rooms[room.name] = room
        for identity in room.members:
            self._of.setdefault(identity, set()).add(room.name)
            await self.outbox.enter_room(identity, room.name)

    # ------------------------------------------------------------------ queries
    def get(self, name: Any) -> Room:
        room = self.rooms.get(valid_room_name(name))
        if room is None:
            raise not_found("Room not found")
        return room

    def rooms_of(self, identity: str) -> list[str]:
        return sorted(self._of.get(identity, ()))

    def is_member(self, identity: str, name: str) -> bool:
        return name in self._of.get(identity, ())

    def visible_names(self, principal: Principal) -> list[str]:
        """Admins see every room; others the rooms they belong to."""
        if principal.is_admin:
            return sorted(self.rooms)
        return self.rooms_of(principal.identity)

    def require_members_visible(
        self, room: Room, principal: Principal, serving: Callable[[str], list[str]]
    ) -> None:
        """Who is in a room is the room's business: its members, the
        extensions serving it (``serving(room)``), and admins."""
        if principal.is_admin or principal.identity in room.members:
            return
        if principal.is_extension and principal.identity in serving(room.name):
            return
        raise forbidden("You are not a member of this room.")

    def members_view(
        self,
        room: Room,
        muted: Callable[[str, str], Any] | None = None,
        only: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Member items (of ``only``, a page of them, when given);
        ``muted(identity, room)`` gives the mute in force."""
        items = []
        members = room.members.values() if only is None else [room.members[i] for i in only]
        for m in members:
            mute = muted(m.identity, room.name) if muted is not None else None
            session = self.presence.sessions.get(m.identity)
            p = session.principal if session else None
            items.append(
                {
                    "clientId": m.identity,
                    "identity": m.identity,
                    "id": m.identity,
                    "role": m.role.value,
                    "joinedAt": m.joined_at,
                    "clientType": p.client_type if p else None,
                    "description": p.desc if p else None,
                    "desc": p.desc if p else None,
                    "online": session is not None,
                    "muted": mute is not None,
                    "mutedUntil": mute.muted_until if mute is not None else None,
                }
            )
        return items

    # ------------------------------------------------------------------ lifecycle
    async def join_monitor_room(self, identity: str) -> None:
        room = self.rooms[MONITOR_ROOM]
        if identity not in room.members:
            await self._add(room, identity, Role.MANAGER, announce=False)

    async def create(self, name: Any, actor: Principal) -> Room:
        if not (actor.is_admin or actor.is_extension):
            raise forbidden("Unauthorized")
        return await self.create_owned(name, actor)

    async def create_owned(self, name: Any, actor: Principal) -> Room:
        """A new room with ``actor`` as its master, whatever its type: the
        HTTP API opens its caller's conversations this way."""
        name = valid_room_name(name)
        if name in self.rooms or is_reserved(name):
            raise conflict("Room already exists")
        if name in self.reserved_names() and name != actor.identity:
            raise conflict("Room name is reserved for a client.")
        now = iso_now()
        room = Room(
            name,
            self.default_mode(),
            now,
            created_by=actor.identity,
            members={actor.identity: MemberRecord(actor.identity, Role.MASTER, now)},
        )
        if name == actor.identity:
            room.personal_of = actor.identity
        await self._insert(room)
        created: RoomCreated = {"roomName": room.name, "room": room.info()}
        self.outbox.emit(Namespace.ROOMS, Ev.ROOM_CREATED, created, [room_addr(MONITOR_ROOM)])
        if room.personal_of is None:
            audit.record("room.create", name)
        return room

    async def delete(self, name: Any, actor: Principal) -> None:
        room = self.get(name)
        require_master(room, actor)
        if room.name == MONITOR_ROOM:
            raise forbidden("monitor-room cannot be deleted.")
        if room.personal_of and self.presence.is_present(room.personal_of):
            raise conflict("Cannot delete a personal room of a connected client.")
        await self._remove(room)
        audit.record("room.delete", room.name)

    async def _remove(self, room: Room) -> None:
        await self.store.delete_room(room.name)
        self.on_changed()
        del self.rooms[room.name]
        notice: RoomDeleted = {
            "roomName": room.name,
            "message": f'Room "{room.name}" has been deleted.',
        }
        former = list(room.members)
        self.outbox.emit(
            Namespace.ROOMS,
            Ev.DELETE_ROOM,
            notice,
            [room_addr(room.name), room_addr(MONITOR_ROOM)],
        )
        for identity in former:
            self._of.get(identity, set()).discard(room.name)
            await self.outbox.leave_room(identity, room.name)
        for hook in self.on_deleted:
            await hook(room)

    # ------------------------------------------------------------------ membership
    async def add_member(self, name: Any, identity: Any, role: Any, actor: Principal) -> Room:
        room = self.get(name)
        identity = valid_room_name(identity)
        role = _role(role)
        require_moderator(room, actor)
        if role is Role.MASTER and not (actor.is_admin or room.role(actor.identity) is Role.MASTER):
            raise forbidden("Only the master or an admin may grant master.")
        if identity in room.members:
            raise conflict("Client already in room")
        await self._add(room, identity, role, announce=True)
        audit.record("member.add", identity, room=room.name, role=role.value)
        return room

    async def _add(self, room: Room, identity: str, role: Role, *, announce: bool) -> None:
        now = iso_now()
        member = MemberRecord(identity, role, now)
        demoted = self._demotion(room, role)
        await self.store.put_members(room.name, [member, *demoted])
        self.on_changed()
        for d in demoted:
            room.members[d.identity] = d
        room.members[identity] = member
        self._of.setdefault(identity, set()).add(room.name)
        await self.outbox.enter_room(identity, room.name)
        if not announce:
            return
        await self.history.system(
            room.name, f"[System] {identity} has joined the room as {role.value}."
        )
        joined: MemberJoined = {
            "clientId": identity,
            "identity": identity,
            "roomName": room.name,
            "role": role.value,
        }
        await self._notify(
            room, Ev.MEMBER_JOINED, joined, [a for a in room.moderators if a != identity]
        )
        await self._role_changed(room, identity, role, None)
        for d in demoted:
            await self._role_changed(room, d.identity, d.role, Role.MASTER)

    def _demotion(self, room: Room, new_role: Role) -> list[MemberRecord]:
        master = room.master
        if new_role is not Role.MASTER or master is None:
            return []
        old = room.members[master]
        return [MemberRecord(master, Role.MANAGER, old.joined_at)]

    async def remove_member(
        self, name: Any, identity: Any, actor: Principal, *, kick: bool = False
    ) -> Room:
        room = self.get(name)
        identity = valid_room_name(identity)
        if identity not in room.members:
            raise not_found("Client not in room")
        if room.personal_of == identity:
            raise bad_request("Invalid operation")
        if kick or identity != actor.identity:
            require_can_act_on(room, actor, identity)
        await self.store.remove_member(room.name, identity)
        self.on_changed()
        del room.members[identity]
        self._of.get(identity, set()).discard(room.name)
        await self.outbox.leave_room(identity, room.name)
        await self.history.system(room.name, f"[System] {identity} has left the room.")
        left: MemberLeft = {"clientId": identity, "identity": identity, "roomName": room.name}
        await self._notify(room, Ev.MEMBER_LEFT, left, room.moderators)
        if kick:
            warning: Warning = {
                "message": f"You have been kicked from room {room.name}.",
                "roomName": room.name,
            }
            for namespace in NOTICE_NAMESPACES:
                self.outbox.emit(namespace, Ev.WARNING, warning, [identity_addr(identity)])
        if self.on_member_status is not None:
            await self.on_member_status(identity, room.name, MemberStatus.IDLE)
        audit.record("member.kick" if kick else "member.remove", identity, room=room.name)
        return room

    async def set_role(self, name: Any, identity: Any, role: Any, actor: Principal) -> Room:
        room = self.get(name)
        identity = valid_room_name(identity)
        role = _role(role)
        require_master(room, actor)
        previous = room.role(identity)
        if previous is None:
            raise not_found("Client not in room")
        if previous is role:
            return room
        member = MemberRecord(identity, role, room.members[identity].joined_at)
        demoted = [d for d in self._demotion(room, role) if d.identity != identity]
        await self.store.put_members(room.name, [member, *demoted])
        self.on_changed()
        for d in demoted:
            room.members[d.identity] = d
        room.members[identity] = member
        await self._role_changed(room, identity, role, previous)
        for d in demoted:
            await self._role_changed(room, d.identity, d.role, Role.MASTER)
        audit.record(
            "member.role", identity, room=room.name, role=role.value, previous=previous.value
        )
        return room

    async def set_mode(self, name: Any, value: Any, actor: Principal) -> tuple[Room, bool]:
        """Set a room's mode (a name or an alias); returns the room and
        whether the mode changed."""
        mode = _mode(value)
        if not isinstance(name, str) or name not in self.rooms:
            raise not_found(f"Room {name} not found.")
        room = self.rooms[name]
        if not (actor.is_admin or room.role(actor.identity) in (Role.MASTER, Role.MANAGER)):
            raise forbidden(
                "Permission denied. Only room master/manager or admin can set the mode."
            )
        previous = room.mode
        if previous is mode:
            return room, False
        await self.store.set_room_mode(room.name, mode)
        self.on_changed()
        room.mode = mode
        payload: RoomModeChanged = {
            "roomName": room.name,
            "mode": mode.value,
            "setter": actor.identity,
        }
        self.outbox.emit(
            Namespace.ROOMS,
            Ev.ROOM_MODE_CHANGED,
            payload,
            [room_addr(room.name), room_addr(MONITOR_ROOM)],
        )
        for hook in self.on_mode_changed:
            await hook(room, previous)
        audit.record("room.mode", room.name, mode=mode.value, previous=previous.value)
        return room, True

    # ------------------------------------------------------------------ notices
    async def _notify(
        self,
        room: Room,
        event: str,
        payload: MemberJoined | MemberLeft | MemberRoleChanged,
        to: list[str],
    ) -> None:
        """To the named identities on ``/`` and ``/rooms``; admins (in
        monitor-room) see every room's changes on ``/rooms`` too."""
        addrs = [identity_addr(i) for i in to]
        for namespace in NOTICE_NAMESPACES:
            targets = [*addrs, room_addr(MONITOR_ROOM)] if namespace == Namespace.ROOMS else addrs
            if targets:
                self.outbox.emit(namespace, event, payload, targets)

    async def _role_changed(
        self, room: Room, identity: str, role: Role, previous: Role | None
    ) -> None:
        payload: MemberRoleChanged = {
            "clientId": identity,
            "identity": identity,
            "targetIdentity": identity,
            "roomName": room.name,
            "role": role.value,
            "newRole": role.value,
            "previousRole": previous.value if previous else None,
        }
        to = list(dict.fromkeys([identity, *room.moderators]))
        await self._notify(room, Ev.MEMBER_ROLE_CHANGED, payload, to)


def _role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise bad_request("Invalid role") from None


def _mode(value: Any) -> RequestMode:
    mode = parse_mode(value)
    if mode is None:
        raise bad_request(
            "Invalid mode specified. Valid modes are: " + ", ".join(m.value for m in RequestMode)
        )
    return mode
