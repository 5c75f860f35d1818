"""Socket.IO implementation of the domain's :class:`Outbox` port.

``emit`` encodes a packet once and hands it straight to each recipient's
Engine.IO queue. python-socketio's own ``emit`` creates one task per
recipient, which costs more than the send itself on the streaming path;
queue puts do not suspend, so order per recipient is the call order. The
Engine.IO and manager internals it uses are listed in ``realtime/internals.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from engineio import packet as eio_packet
from socketio import packet

from newage.domain.identity.presence import Presence
from newage.domain.identity.principal import ConnMode
from newage.domain.ports.delivery import CLIENT, IDENTITY, ROOM, room_addr, split_addr
from newage.metrics import Metrics
from newage.protocol.names import ROOM_MIRROR_NAMESPACES, Namespace
from newage.realtime import internals
from newage.realtime.server import NewAgeServer

EVENT_HEAD = str(packet.EVENT)
SENT_POLL = 0.01  # seconds between looks at a socket's outbound queue


def event_packets(packet_class: Any, namespace: str, event: str, data: Any) -> list[Any]:
    """The Engine.IO packets of one Socket.IO EVENT, encoded once for every
    recipient.

    Written here for what the server sends (JSON): python-socketio's packet
    first walks the whole payload looking for bytes, then formats; that was
    a third of an emit on the streaming path. Anything orjson refuses
    (bytes, which become binary attachments, or a lone UTF-16 half) takes
    ``packet_class``, python-socketio's packet, whose output this equals
    (tests/test_packets.py).
    """
    try:
        body = orjson.dumps([event, data], option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        pkt = packet_class(packet.EVENT, namespace=namespace, data=[event, data])
        encoded = pkt.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
    head = EVENT_HEAD if namespace == "/" else f"{EVENT_HEAD}{namespace},"
    return [eio_packet.Packet(eio_packet.MESSAGE, head + body)]


class SocketOutbox:
    def __init__(self, sio: NewAgeServer, presence: Presence, metrics: Metrics) -> None:
        self.sio = sio
        self.presence = presence
        self.metrics = metrics
        self._out: dict[str, Any] = {}  # namespace -> labelled counter

    def encode(self, namespace: str, event: str, data: Any) -> list[Any]:
        return event_packets(self.sio.packet_class, namespace, event, data)

    def recipients(
        self, namespace: str, to: Sequence[str] | None, skip_extensions: bool
    ) -> list[str]:
        """Engine.IO sids of the sockets addressed, each once.

        Chat rooms are Socket.IO rooms; identities and clientIds are looked
        up in presence instead (a Socket.IO room per identity and namespace
        would cost a dictionary per socket for nothing).
        """
        manager = self.sio.manager
        if namespace not in manager.rooms:
            return []
        if to is None:
            sids: dict[str, str] = dict(manager.get_participants(namespace, None))
        else:
            rooms = []
            sids = {}
            for addr in to:
                kind, name = split_addr(addr)
                if kind == IDENTITY:
                    for sid in self.presence.sids(name, namespace):
                        sids[sid] = ""
                elif kind == CLIENT:
                    for client_ref in self.presence.client_sids(name):
                        if client_ref.namespace == namespace:
                            sids[client_ref.sid] = ""
                elif kind == ROOM:
                    rooms.append(addr)
                else:  # a socket id
                    sids[addr] = ""
            if rooms:
                sids.update(manager.get_participants(namespace, rooms))
        targets = []
        for sid, eio_sid in sids.items():
            if skip_extensions:
                ref = self.presence.get(sid)
                if ref is not None and ref.principal.is_extension:
                    continue
            if not eio_sid:
                eio_sid = manager.eio_sid_from_sid(sid, namespace)
                if eio_sid is None:
                    continue
            targets.append(eio_sid)
        return targets

    def emit(
        self,
        namespace: str,
        event: str,
        data: Any,
        to: Sequence[str] | None = None,
        *,
        skip_extensions: bool = False,
    ) -> None:
        # straight onto each socket's queue: Engine.IO's own ``send`` adds
        # only a ping check the service task already makes, and a log call
        targets = self.recipients(namespace, to, skip_extensions)
        if not targets:
            return
        pkts = self.encode(namespace, event, data)
        sockets = self.sio.eio.sockets
        for eio_sid in targets:
            sock = sockets.get(eio_sid)
            if sock is None or sock.closed:
                continue
            for pkt in pkts:
                sock.queue.put_nowait(pkt)
        counter = self._out.get(namespace)
        if counter is None:
            counter = self._out[namespace] = self.metrics.events_out.labels(namespace)
        counter.inc(len(targets))

    async def enter_room(self, identity: str, room: str) -> None:
        await self._mirror(identity, room, join=True)

    async def leave_room(self, identity: str, room: str) -> None:
        await self._mirror(identity, room, join=False)

    async def _mirror(self, identity: str, room: str, *, join: bool) -> None:
        addr = room_addr(room)
        for namespace in ROOM_MIRROR_NAMESPACES:
            for sid in self.presence.full_sids(identity, namespace):
                if join:
                    await self.sio.enter_room(sid, addr, namespace=namespace)
                else:
                    await self.sio.leave_room(sid, addr, namespace=namespace)

    async def disconnect(self, sid: str, namespace: str) -> None:
        await self.sio.disconnect(sid, namespace=namespace)

    async def call(self, namespace: str, sid: str, event: str, data: Any, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def answered(*args: Any) -> None:
            if not future.done():
                future.set_result(args[0] if len(args) == 1 else list(args) or None)

        try:
            # (cancelled during the emit, the callback may be registered already)
            await self.sio.emit(event, data, to=sid, namespace=namespace, callback=answered)
            return await asyncio.wait_for(future, timeout)
        finally:
            if not future.done():
                future.cancel()
            # python-socketio keeps an unanswered callback until the target
            # disconnects; a call given up on must not hold memory that long
            internals.forget_callback(self.sio.manager, sid, answered)

    async def sent(self, sid: str, namespace: str) -> bool:
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, namespace)
        while True:
            sock = internals.engine_socket(self.sio, eio_sid)
            if sock is None or sock.closed or sock.closing:
                return False
            if sock.queue.empty():
                return True
            await asyncio.sleep(SENT_POLL)  # the writer task signals nothing

    def addresses(self) -> set[str]:
        """``"<namespace> <address>"`` for every address a local socket
        answers to (``*``: the namespace has sockets), for a cluster's
        directory; the socket's own id is one of its Socket.IO rooms."""
        found: set[str] = set()
        for namespace, rooms in self.sio.manager.rooms.items():
            for name, members in rooms.items():
                if members:
                    found.add(f"{namespace} {'*' if name is None else name}")
        for ref in self.presence.sockets.values():
            found.add(f"{ref.namespace} {IDENTITY}:{ref.principal.identity}")
            found.add(f"{ref.namespace} {CLIENT}:{ref.principal.client_id}")
            if ref.principal.is_extension and ref.mode is ConnMode.FULL:
                # an extension here takes requests from the other nodes
                found.add(f"{ref.namespace} ext:{ref.principal.identity}")
            if ref.namespace == Namespace.FUNCTION_CALL and ref.mode is ConnMode.FULL:
                # a target of function calls from the other nodes (cluster/calls.py)
                found.add(f"{ref.namespace} fn:{ref.principal.identity}")
                found.add(f"{ref.namespace} fnc:{ref.principal.client_id}")
        return found

    def drained(self) -> bool:
        """Every connection's outbound queue is empty."""
        return all(sock.queue.empty() for sock in internals.engine_sockets(self.sio))

    def pending_callbacks(self) -> int:
        """Callbacks python-socketio holds for unanswered calls (all sockets)."""
        return internals.pending_callbacks(self.sio.manager)
