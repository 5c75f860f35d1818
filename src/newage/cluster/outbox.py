"""The delivery port across nodes: the local outbox, plus the other nodes'.

Local recipients get an event at once, exactly as without a cluster. Each
other node with a recipient (by the directory, in memory) gets the event on
its delivery stream and hands it to its own local outbox, which applies the
same rules (``skip_extensions``, one packet per socket). What a node
receives from another is never forwarded again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson

from newage.cluster.node import ClusterNode
from newage.domain.ports.delivery import Outbox, identity_addr, room_addr
from newage.logs import log
from newage.protocol.names import ROOM_MIRROR_NAMESPACES

EMIT, DISCONNECT, ENTER, LEAVE = "e", "x", "j", "l"


class LocalOutbox(Outbox, Protocol):
    def drained(self) -> bool: ...

    def pending_callbacks(self) -> int: ...


def encode(item: list[Any]) -> bytes | None:
    try:
        return orjson.dumps(item)
    except TypeError:
        log.exception("cluster: cannot send %s to other nodes", item[:3])
        return None


class ClusterOutbox:
    def __init__(self, local: LocalOutbox, node: ClusterNode) -> None:
        self.local = local
        self.node = node
        node.deliver = self.apply
        self.remote_call: Callable[..., Awaitable[Any]] | None = None
        node.deliver_now = self.apply_now

    def emit(
        self,
        namespace: str,
        event: str,
        data: Any,
        to: Sequence[str] | None = None,
        *,
        skip_extensions: bool = False,
    ) -> None:
        self.local.emit(namespace, event, data, to, skip_extensions=skip_extensions)
        nodes = self.node.nodes_for(namespace, to)
        if nodes:
            # encoded now: the caller may change ``data`` once this returns
            targets = None if to is None else list(to)
            item = encode([EMIT, namespace, event, data, targets, skip_extensions])
            if item is not None:
                self.node.send(nodes, item)

    async def enter_room(self, identity: str, room: str) -> None:
        await self.local.enter_room(identity, room)
        self._to_identity_nodes(ENTER, identity, room)
        self.node.mark_dirty()

    async def leave_room(self, identity: str, room: str) -> None:
        await self.local.leave_room(identity, room)
        self._to_identity_nodes(LEAVE, identity, room)
        self.node.mark_dirty()

    def _to_identity_nodes(self, op: str, identity: str, room: str) -> None:
        addr = [identity_addr(identity)]
        nodes: set[str] = set()
        for namespace in ROOM_MIRROR_NAMESPACES:
            found = self.node.nodes_for(namespace, addr)
            nodes.update(found)
            if op == ENTER:
                # what this node sends to the room next must reach the new
                # member before that node's directory says it joined
                for node in found:
                    self.node.assume(node, f"{namespace} {room_addr(room)}")
        if nodes:
            self.node.send(nodes, orjson.dumps([op, identity, room]))

    async def disconnect(self, sid: str, namespace: str) -> None:
        nodes = self.node.nodes_for(namespace, [sid])
        if nodes:
            self.node.send(nodes, orjson.dumps([DISCONNECT, sid, namespace]))
        else:
            await self.local.disconnect(sid, namespace)

    async def call(self, namespace: str, sid: str, event: str, data: Any, timeout: float) -> Any:
        nodes = self.node.nodes_for(namespace, [sid])
        if nodes and self.remote_call is not None:  # another node's socket (cluster/calls.py)
            return await self.remote_call(min(nodes), namespace, sid, event, data, timeout)
        return await self.local.call(namespace, sid, event, data, timeout)

    async def sent(self, sid: str, namespace: str) -> bool:
        if self.node.nodes_for(namespace, [sid]):
            return True  # another node's socket: its own outbox paces it
        return await self.local.sent(sid, namespace)

    def drained(self) -> bool:
        return self.local.drained()

    def pending_callbacks(self) -> int:
        return self.local.pending_callbacks()

    def apply_now(self, item: list[Any]) -> bool:
        """An event another node sent here, to the local sockets at once;
        False (nothing done) for what has to wait (rooms, disconnects)."""
        if item[0] != EMIT:
            return False
        _, namespace, event, data, to, skip = item
        self.local.emit(namespace, event, data, to, skip_extensions=skip)
        return True

    async def apply(self, item: list[Any]) -> None:
        """An item another node sent here: to the local sockets only."""
        op = item[0]
        if op == EMIT:
            _, namespace, event, data, to, skip = item
            self.local.emit(namespace, event, data, to, skip_extensions=skip)
        elif op == ENTER:
            await self.local.enter_room(item[1], item[2])
            self.node.mark_dirty()
        elif op == LEAVE:
            await self.local.leave_room(item[1], item[2])
            self.node.mark_dirty()
        elif op == DISCONNECT:
            await self.local.disconnect(item[1], item[2])
