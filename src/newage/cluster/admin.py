"""Admin actions on clients connected to other nodes.

Revoked trust and keys need nothing here: every node notices the store's
change and enforces it on its own sockets. An explicit disconnect names an
identity or a clientId; the nodes with sockets of it drop them and say how
many.
"""

from __future__ import annotations

import asyncio
from typing import Any

from newage.cluster.node import ClusterNode
from newage.domain.identity.guard import AccessGuard
from newage.domain.ports.delivery import IDENTITY, client_addr, identity_addr
from newage.protocol.names import Namespace

ASK_TIMEOUT = 5.0


class RemoteAdmin:
    def __init__(self, node: ClusterNode, guard: AccessGuard) -> None:
        self.node = node
        self.guard = guard
        guard.elsewhere = self.disconnect
        node.handlers["disconnect"] = self._disconnect

    async def disconnect(self, kind: str, name: str) -> int:
        addr = [identity_addr(name) if kind == IDENTITY else client_addr(name)]
        nodes: set[str] = set()
        for namespace in Namespace:
            nodes.update(self.node.nodes_for(namespace.value, addr))
        answers = await asyncio.gather(
            *(self.node.ask(n, "disconnect", [kind, name], ASK_TIMEOUT) for n in sorted(nodes)),
            return_exceptions=True,
        )
        return sum(a for a in answers if isinstance(a, int))

    async def _disconnect(self, payload: list[Any]) -> int:
        kind, name = payload
        if kind == IDENTITY:
            return await self.guard.disconnect_identity(name, here=True)
        return await self.guard.disconnect_client(name, here=True)
