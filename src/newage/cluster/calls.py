"""Calls with an ack to sockets of other nodes (docs/cluster.md).

A ``FUNCTION_CALL`` to a target (an identity, else a clientId) goes to the
target's sockets here and, at the same time, to every other node whose
directory has a keyed ``/function_call`` socket of it (``fn:<identity>``,
``fnc:<clientId>``); each such node calls its own sockets and sends back the
first answer. The caller keeps the first answer of all. A single socket of
another node (``Outbox.call``) is called the same way through its node.

The caller's timeout holds across nodes: a node that does not answer in
time counts as a timeout, a node that dies fails its calls as soon as its
heartbeat expires (``ClusterNode.ask``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from newage.cluster.node import ClusterNode
from newage.cluster.outbox import LocalOutbox
from newage.domain.functions.service import FunctionService
from newage.errors import ErrorCode, NewAgeError
from newage.protocol.names import Namespace
from newage.protocol.outbound import ForwardedCall

# the answering node gives up after the caller's timeout; its "timed out"
# still has to travel back before the caller gives up on the node itself
MARGIN = 2.0
FUNCTIONS = Namespace.FUNCTION_CALL.value


class RemoteCalls:
    def __init__(self, node: ClusterNode, functions: FunctionService, local: LocalOutbox) -> None:
        self.node = node
        self.functions = functions
        self.local = local  # this node's own outbox: answers for local sockets only
        functions.elsewhere = self.elsewhere
        node.handlers["fn"] = self._answer_target
        node.handlers["call"] = self._answer_socket

    # ------------------------------------------------------------------ calling
    def elsewhere(
        self, target: str, payload: ForwardedCall, timeout: float
    ) -> list[Awaitable[Any]]:
        nodes = self.node.nodes_for(FUNCTIONS, [f"fn:{target}"])
        if not nodes:
            nodes = self.node.nodes_for(FUNCTIONS, [f"fnc:{target}"])
        return [self._ask(n, "fn", [target, payload, timeout], timeout) for n in sorted(nodes)]

    async def call(
        self, node: str, namespace: str, sid: str, event: str, data: Any, timeout: float
    ) -> Any:
        """``Outbox.call`` for socket ``sid`` of ``node``."""
        return await self._ask(node, "call", [namespace, sid, event, data, timeout], timeout)

    async def _ask(self, node: str, kind: str, payload: Any, timeout: float) -> Any:
        """The answer; TimeoutError when none came in time, ConnectionError
        when the node or the socket went."""
        reply = await self.node.ask(node, kind, payload, timeout + MARGIN)
        if not isinstance(reply, dict):
            raise ConnectionError(f"node {node} could not make the call")
        if "e" in reply:
            if reply["e"] == ErrorCode.TIMEOUT.value:
                raise TimeoutError(f"no answer on node {node}")
            raise ConnectionError(f"node {node}: {reply.get('m')}")
        return reply.get("a")

    # ------------------------------------------------------------------ answering
    async def _answer_target(self, payload: list[Any]) -> dict[str, Any]:
        target, call, timeout = payload
        try:
            return {"a": await self.functions.answer(call, target, float(timeout))}
        except NewAgeError as exc:
            return {"e": exc.code.value, "m": exc.message}

    async def _answer_socket(self, payload: list[Any]) -> dict[str, Any]:
        namespace, sid, event, data, timeout = payload
        try:
            return {"a": await self.local.call(namespace, sid, event, data, float(timeout))}
        except TimeoutError:
            return {"e": ErrorCode.TIMEOUT.value}
        except Exception as exc:  # the socket went meanwhile
            return {"e": ErrorCode.UNAVAILABLE.value, "m": type(exc).__name__}
