"""``/rooms``: rooms, members, roles, moderation and connection policies."""

from __future__ import annotations

from typing import Any, TypedDict

from newage.domain.identity.presence import SocketRef
from newage.domain.rooms.relations import require_monitor_or_extension
from newage.errors import bad_request
from newage.protocol.acks import (
    OK,
    Assigned,
    Assignments,
    ClientRooms,
    DefaultModeSet,
    ExtensionList,
    MemberAck,
    MemberRemoved,
    ModeSet,
    Muted,
    PolicyAck,
    RoomAck,
    RoomAssignments,
    RoomMembers,
    RoomNamed,
    RoomsPage,
    Unmuted,
)
from newage.protocol.names import Ev
from newage.protocol.rooms import (
    AssignIn,
    MemberIn,
    ModeIn,
    MuteIn,
    OptionalRoomIn,
    PageIn,
    PolicyIn,
    RemoveIn,
    RoleIn,
    RoomIn,
    RoomPageIn,
    TargetIn,
    UnmuteIn,
)
from newage.realtime.base import BaseNamespace, on
from newage.realtime.history_events import HistoryEvents


class Paging(TypedDict):
    total: int
    nextOffset: int | None


class RoomsNamespace(HistoryEvents, BaseNamespace):
    @property
    def network_safe(self) -> bool:
        return self.services.live.current.network_safe

    # ------------------------------------------------------------------ rooms
    def _page(self, items: list[Any], offset: int, limit: int | None) -> tuple[list[Any], Paging]:
        """One page of a list, and the fields that say where the rest is."""
        cap = self.services.live.current.max_list_page
        size = min(limit or cap, cap)
        page = items[offset : offset + size]
        end = offset + len(page)
        return page, {"total": len(items), "nextOffset": end if end < len(items) else None}

    @on(Ev.GET_ROOMS, "getRooms", model=PageIn)
    async def get_rooms(self, ref: SocketRef, data: PageIn) -> RoomsPage:
        names = self.services.rooms.visible_names(ref.principal)
        names, paging = self._page(names, data.offset, data.limit)
        details = [self.services.rooms.rooms[n].info() for n in names]
        return {**OK, "rooms": names, "roomDetails": details, **paging}

    @on(Ev.CREATE_ROOM, model=RoomIn)
    async def create_room(self, ref: SocketRef, data: RoomIn) -> RoomAck:
        room = await self.services.rooms.create(data.room_name, ref.principal)
        return {**OK, "roomName": room.name, "room": room.info()}

    @on(Ev.DELETE_ROOM, model=RoomIn)
    async def delete_room(self, ref: SocketRef, data: RoomIn) -> RoomNamed:
        await self.services.rooms.delete(data.room_name, ref.principal)
        return {**OK, "roomName": data.room_name}

    @on(Ev.GET_CLIENTS_IN_ROOM, "getClientsInRoom", model=RoomPageIn)
    async def clients_in_room(self, ref: SocketRef, data: RoomPageIn) -> RoomMembers:
        room = self.services.rooms.get(data.room_name)
        self.services.rooms.require_members_visible(
            room, ref.principal, self.services.relations.for_room
        )
        identities, paging = self._page(list(room.members), data.offset, data.limit)
        members = self.services.rooms.members_view(room, self.services.mutes.muted, identities)
        return {**OK, "roomName": room.name, "clients": members, "room": room.info(), **paging}

    # ------------------------------------------------------------------ members
    @on(Ev.ADD_CLIENT_TO_ROOM, model=MemberIn)
    async def add_client(self, ref: SocketRef, data: MemberIn) -> MemberAck:
        await self.services.rooms.add_member(
            data.room_name, data.identity, data.role, ref.principal
        )
        return {**OK, "roomName": data.room_name, "identity": data.identity, "role": data.role}

    @on(Ev.REMOVE_CLIENT_FROM_ROOM, model=RemoveIn)
    async def remove_client(self, ref: SocketRef, data: RemoveIn) -> MemberRemoved:
        await self.services.rooms.remove_member(data.room_name, data.identity, ref.principal)
        return {**OK, "roomName": data.room_name, "identity": data.identity}

    @on(Ev.SET_MEMBER_ROLE, model=RoleIn)
    async def set_role(self, ref: SocketRef, data: RoleIn) -> MemberAck:
        await self.services.rooms.set_role(data.room_name, data.target, data.role, ref.principal)
        return {**OK, "roomName": data.room_name, "identity": data.target, "role": data.role}

    @on(Ev.KICK_MEMBER, model=TargetIn)
    async def kick(self, ref: SocketRef, data: TargetIn) -> MemberRemoved:
        await self.services.rooms.remove_member(
            data.room_name, data.target, ref.principal, kick=True
        )
        return {**OK, "roomName": data.room_name, "identity": data.target}

    @on(Ev.MUTE_MEMBER, model=MuteIn)
    async def mute(self, ref: SocketRef, data: MuteIn) -> Muted:
        record = await self.services.mutes.mute(
            data.target, data.room_name, data.duration, ref.principal
        )
        return {
            **OK,
            "identity": record.identity,
            "roomName": record.room,
            "mutedUntil": record.muted_until,
            "duration": record.duration_label,
        }

    @on(Ev.UNMUTE_MEMBER, model=UnmuteIn)
    async def unmute(self, ref: SocketRef, data: UnmuteIn) -> Unmuted:
        lifted = await self.services.mutes.unmute(data.target, data.room_name, ref.principal)
        return (
            {**OK, "identity": data.target, "roomName": data.room_name}
            if lifted
            else {
                **OK,
                "identity": data.target,
                "roomName": data.room_name,
                "message": "Not muted.",
            }
        )

    # ------------------------------------------------------------------ modes
    @on(Ev.SET_ROOM_MESSAGE_REQUEST_MODE, model=ModeIn)
    async def set_room_mode(self, ref: SocketRef, data: ModeIn) -> ModeSet:
        if not data.room_name or not data.mode:
            raise bad_request("roomName and mode are required.")
        return await self._set_mode(ref, data.room_name, data.mode)

    @on(Ev.SET_MESSAGE_REQUEST_MODE, model=ModeIn)
    async def set_mode(self, ref: SocketRef, data: ModeIn) -> ModeSet | DefaultModeSet:
        if data.room_name:
            return await self._set_mode(ref, data.room_name, data.mode)
        mode = await self.services.rooms.set_default_mode(data.mode, ref.principal)
        return {**OK, "mode": mode.value, "default": True}

    async def _set_mode(self, ref: SocketRef, room_name: Any, value: Any) -> ModeSet:
        room, changed = await self.services.rooms.set_mode(room_name, value, ref.principal)
        return {**OK, "roomName": room.name, "mode": room.mode.value, "changed": changed}

    # ------------------------------------------------------------------ policies
    @on(Ev.SET_CONNECTION_POLICY, model=PolicyIn)
    async def set_policy(self, ref: SocketRef, data: PolicyIn) -> PolicyAck:
        policy = await self.services.relations.set_policy(
            data.policy, ref.principal, self.network_safe
        )
        return {**OK, "policy": policy.value}

    @on(Ev.GET_CONNECTION_POLICY)
    async def get_policy(self, ref: SocketRef, _: Any) -> PolicyAck:
        return {**OK, "policy": self.services.relations.model.policy.value}

    @on(Ev.ASSIGN_EXTENSION_TO_CLIENT, model=AssignIn)
    async def assign(self, ref: SocketRef, data: AssignIn) -> Assigned:
        exts = await self.services.relations.assign(
            data.client_room, data.extensions, ref.principal, self.network_safe
        )
        return {**OK, "clientRoom": data.client_room, "extensions": exts}

    @on(Ev.GET_ASSIGNMENTS)
    async def get_assignments(self, ref: SocketRef, _: Any) -> Assignments:
        view = self.services.relations.view()
        return {
            **OK,
            "assignments": view["assignments"],
            "policy": view["policy"],
            "manualAssignments": view["manualAssignments"],
        }

    @on(Ev.GET_ASSIGNMENTS_FOR_ROOM, model=OptionalRoomIn)
    async def assignments_for_room(self, ref: SocketRef, data: OptionalRoomIn) -> RoomAssignments:
        room, assignments = self.services.relations.assignments_for(ref.principal, data.room_name)
        return {**OK, "roomName": room, "assignments": assignments}

    @on(Ev.GET_CONNECTED_EXTENSIONS)
    async def connected_extensions(self, ref: SocketRef, _: Any) -> ExtensionList:
        require_monitor_or_extension(ref.principal)
        return {**OK, "extensions": list(self.services.relations.model.extensions)}

    @on(Ev.GET_CONNECTED_CLIENT_ROOMS)
    async def connected_client_rooms(self, ref: SocketRef, _: Any) -> ClientRooms:
        require_monitor_or_extension(ref.principal)
        return {**OK, "clientRooms": list(self.services.relations.model.client_rooms)}
