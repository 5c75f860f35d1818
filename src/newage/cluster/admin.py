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
from newage.domain.llm.liveness import Liveness
from newage.domain.ports.delivery import IDENTITY, client_addr, identity_addr
from newage.protocol.names import Namespace

ASK_TIMEOUT = 5.0


class RemoteAdmin:
    def __init__(self, node: ClusterNode, guard: AccessGuard, liveness: Liveness) -> None:
        self.node = node
        self.guard = guard
        self.liveness = liveness
        guard.elsewhere = self.disconnect
        liveness.elsewhere = self.extension_states
        node.handlers["disconnect"] = self._disconnect
        node.handlers["extensions"] = self._extension_states

    async def extension_states(self) -> list[dict[str, Any]]:
        """``GET_EXTENSIONS_STATE`` of every other live node, each item with
        its ``node`` (a node that does not answer in time is left out)."""
        others = sorted(self.node.entries)
        answers = await asyncio.gather(
            *(self.node.ask(n, "extensions", None, ASK_TIMEOUT) for n in others),
            return_exceptions=True,
        )
        found: list[dict[str, Any]] = []
        for node, answer in zip(others, answers, strict=True):
            if isinstance(answer, list):
                found += [{**item, "node": node} for item in answer]
        return found

    async def _extension_states(self, _: Any) -> list[dict[str, Any]]:
        return self.liveness.states()

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
