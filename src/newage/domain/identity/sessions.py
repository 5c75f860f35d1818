"""What happens when an identity arrives or leaves (docs/protocol.md).

Session start: personal room (persisted), ``monitor-room`` for admins,
client-room registration for plain clients, client-list broadcast. An
extension becomes *available* with its first ``/llm`` socket and stops
being available with its last one. Session end keeps memberships so a
returning client can catch up on its rooms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from newage.domain.identity.presence import Presence, Session, SocketRef
from newage.domain.identity.principal import ConnMode
from newage.domain.ports.delivery import Outbox, room_addr
from newage.domain.rooms.relations import RelationService
from newage.domain.rooms.service import RoomService
from newage.protocol.names import ROOM_MIRROR_NAMESPACES, Ev, Namespace
from newage.protocol.outbound import ClientList

Hook = Callable[[str], Awaitable[None]]
BROADCAST_DELAY = 0.05  # seconds; the client list follows changes this closely


class SessionService:
    def __init__(
        self,
        presence: Presence,
        rooms: RoomService,
        relations: RelationService,
        outbox: Outbox,
        enter: Callable[[str, str, str], Awaitable[None]],
    ) -> None:
        self.presence = presence
        self.rooms = rooms
        self.relations = relations
        self.outbox = outbox
        self.enter = enter  # (sid, namespace, address) -> join a Socket.IO room
        self.extension_gone: list[Hook] = []
        # (identity, sid): one /llm socket of an extension closed, others remain
        self.instance_gone: list[Callable[[str, str], Awaitable[None]]] = []
        self.session_ended: list[Hook] = []
        self._broadcast: asyncio.TimerHandle | None = None
        # a cluster: the sessions of the other nodes, each item with its "node"
        self.elsewhere: Callable[[], list[dict[str, Any]]] | None = None

    async def socket_added(self, ref: SocketRef) -> bool:
        """Register an accepted socket; runs before the client hears CONNECT,
        so the personal room exists before its first event. True when the
        socket started a session."""
        session = self.presence.add(ref)
        p = ref.principal
        if session is not None:
            await self.rooms.ensure_personal(p.identity, p.client_id, capped=p.is_plain)
            if p.is_admin:
                await self.rooms.join_monitor_room(p.identity)
        if ref.mode is ConnMode.FULL and ref.namespace in ROOM_MIRROR_NAMESPACES:
            for room in self.rooms.rooms_of(p.identity):
                await self.enter(ref.sid, ref.namespace, room_addr(room))
        return session is not None

    async def socket_ready(self, ref: SocketRef, started: bool) -> None:
        """After CONNECT: the notifications of a new session or extension."""
        p = ref.principal
        if started and p.is_plain:
            await self.relations.client_online(p.identity)
        if (
            p.is_extension
            and ref.namespace == Namespace.LLM
            and ref.mode is ConnMode.FULL
            and len(self.presence.full_sids(p.identity, Namespace.LLM)) == 1
        ):
            await self.relations.extension_online(p.identity)
        if ref.mode is ConnMode.FULL and self.presence.is_present(p.identity):
            # a new session, or a new namespace of one: the list shows both
            self.schedule_broadcast()
        if ref.namespace == Namespace.ROOMS and ref.mode is ConnMode.FULL:
            await self.relations.greet(ref.sid, p)

    async def socket_removed(self, sid: str) -> Session | None:
        ref, ended = self.presence.remove(sid)
        if ref is None:
            return None
        p = ref.principal
        if p.is_extension and ref.namespace == Namespace.LLM:
            if not self.presence.full_sids(p.identity, Namespace.LLM):
                await self.relations.extension_offline(p.identity)
                for hook in self.extension_gone:
                    await hook(p.identity)
            else:
                for instance_hook in self.instance_gone:
                    await instance_hook(p.identity, sid)
        if ended is not None:
            if p.is_plain:
                await self.relations.client_offline(p.identity)
            for hook in self.session_ended:
                await hook(p.identity)
            await self.rooms.drop_unused_personal(p.identity, p.client_id)
        still_here = ref.mode is ConnMode.FULL and self.presence.is_present(p.identity)
        if ended is not None or still_here:
            self.schedule_broadcast()
        return ended

    def client_list(self) -> ClientList:
        items = self.presence.client_items()
        if self.elsewhere is not None:
            items += self.elsewhere()
        return {
            "clients": items,
            "nonSillyTavernClients": [i for i in items if i["kind"] != "SillyTavern"],
        }

    def schedule_broadcast(self) -> None:
        """Send the client list soon. A burst of connects (a restart, a
        load test) then costs one list per interval, not one per client,
        each of which would carry every client: quadratic work."""
        if self._broadcast is not None:
            return
        loop = asyncio.get_running_loop()
        self._broadcast = loop.call_later(BROADCAST_DELAY, self._broadcast_clients)

    def _broadcast_clients(self) -> None:
        self._broadcast = None
        if not self.presence.per_namespace.get(Namespace.CLIENTS):
            return  # nobody listens: do not build the list
        payload = self.client_list()
        for event in (Ev.UPDATE_CONNECTED_CLIENTS, Ev.CONNECTED_CLIENTS_UPDATE):
            self.outbox.emit(Namespace.CLIENTS, event, payload)
