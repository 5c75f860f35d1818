"""LLM requests across nodes: a request lives on its extension's node.

When no extension of this node can take a request, it goes to a node that
has one: that node runs the normal intake for the requester (principal and
room are the same everywhere: the store is shared), so its queue, streams
and stream log are unchanged; what it sends the requester and the room
reaches them through the cluster's outbox. The ack comes back the same way.
Cancels of a request forwarded from here go to the node that holds it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

from newage.cluster.node import ClusterNode
from newage.domain.identity.principal import Principal
from newage.domain.llm.chat import ChatService
from newage.domain.llm.requests import LlmRequest, RequestTracker
from newage.domain.llm.routing import parse_targets
from newage.domain.ports.delivery import Outbox, identity_addr
from newage.errors import NewAgeError
from newage.logs import log
from newage.protocol.llm import LlmRequestIn
from newage.protocol.names import ClientKind, Ev, Namespace, RequestStatus

ASK_TIMEOUT = 10.0  # seconds for the other node's intake to answer
OWNERS_KEPT = 100_000  # forwarded request ids remembered (for their cancels)
EXTENSION = f"{Namespace.LLM.value} ext:"
NODE_GONE = "The server process handling this request stopped."


def principal_of(raw: dict[str, Any]) -> Principal:
    return Principal(**{**raw, "kind": ClientKind(raw["kind"])})


class RemoteRequests:
    def __init__(
        self, node: ClusterNode, chat: ChatService, tracker: RequestTracker, outbox: Outbox
    ) -> None:
        self.node = node
        self.chat = chat
        self.outbox = outbox
        # forwarded from here: requestId -> its node (kept after it closes, for
        # GET_REQUEST and CANCEL_REQUEST), and the open ones with their requester
        # and room (failed here if their node dies)
        self.held: OrderedDict[str, str] = OrderedDict()
        self.owners: dict[str, tuple[str, str, str]] = {}
        # taken here for another node: requestId -> that node (told when it closes)
        self.origins: dict[str, str] = {}
        node.handlers["llm"] = self._run
        node.handlers["cancel"] = self._cancel
        node.handlers["closed"] = self._closed
        node.handlers["lookup"] = self._lookup
        node.on_node_gone.append(self.node_gone)
        tracker.on_closed.append(self.closed)
        chat.elsewhere = self.forward
        chat.cancel_elsewhere = self.cancel
        chat.lookup_elsewhere = self.lookup

    def node_for(self, explicit: list[str] | None) -> str | None:
        """A node with the first explicit target, or with any extension."""
        if explicit:
            nodes = self.node.nodes_for(Namespace.LLM, [f"ext:{explicit[0]}"])
            return min(nodes) if nodes else None
        found = {n for e, ns in self.node.where.items() if e.startswith(EXTENSION) for n in ns}
        return min(found) if found else None

    async def forward(
        self, principal: Principal, sid: str | None, data: LlmRequestIn
    ) -> dict[str, Any] | None:
        target = self.node_for(parse_targets(data.target))
        if target is None:
            return None
        payload = {
            "from": self.node.id,
            "principal": dataclasses.asdict(principal),
            "sid": sid,
            "data": data.fields(),
        }
        try:
            ack = await self.node.ask(target, "llm", payload, ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            log.warning("cluster: node %s did not take request %s", target, data.request_id)
            return None
        if isinstance(ack, dict) and ack.get("status") == "ok" and not ack.get("duplicate"):
            room = str(ack.get("roomName", data.target_room or principal.identity))
            self.owners[data.request_id] = (target, principal.identity, room)
            self.held[data.request_id] = target
            while len(self.held) > OWNERS_KEPT:
                self.owners.pop(self.held.popitem(last=False)[0], None)
        return ack if isinstance(ack, dict) else None

    async def _run(self, payload: dict[str, Any]) -> dict[str, Any]:
        principal = principal_of(payload["principal"])
        data = LlmRequestIn.model_validate(payload["data"])
        try:
            ack = await self.chat.request(principal, payload["sid"], data, here=True)
        except NewAgeError as exc:
            return dict(exc.to_ack())
        request = self.chat.tracker.get(data.request_id)
        if request is not None and request.open and not ack.get("duplicate"):
            self.origins[data.request_id] = payload["from"]
        return dict(ack)

    def closed(self, request: LlmRequest) -> None:
        origin = self.origins.pop(request.request_id, None)
        if origin is not None:
            self.node.tell(origin, "closed", request.request_id)

    async def _closed(self, request_id: str) -> None:
        self.owners.pop(request_id, None)

    async def node_gone(self, node: str) -> None:
        """Its requests fail visibly: their requesters are told here."""
        lost = [rid for rid, (owner, _, _) in self.owners.items() if owner == node]
        for request_id in lost:
            _, requester, room = self.owners.pop(request_id)
            payload = {
                "requestId": request_id,
                "roomName": room,
                "status": RequestStatus.FAILED.value,
                "message": NODE_GONE,
            }
            self.outbox.emit(
                Namespace.LLM, Ev.REQUEST_STATUS_UPDATE, payload, [identity_addr(requester)]
            )
        for request_id in [r for r, origin in self.origins.items() if origin == node]:
            del self.origins[request_id]

    async def cancel(self, request_id: str, by: Principal | None) -> dict[str, Any] | None:
        target = self.held.get(request_id)
        if target is None:
            return None
        payload = {
            "requestId": request_id,
            "by": dataclasses.asdict(by) if by is not None else None,
        }
        try:
            ack = await self.node.ask(target, "cancel", payload, ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            return None
        return ack if isinstance(ack, dict) else None

    async def _cancel(self, payload: dict[str, Any]) -> dict[str, Any]:
        by = principal_of(payload["by"]) if payload["by"] is not None else None
        try:
            return dict(await self.chat.cancel(payload["requestId"], by))
        except NewAgeError as exc:
            return dict(exc.to_ack())

    async def lookup(self, request_id: str, by: Principal) -> dict[str, Any] | None:
        target = self.held.get(request_id)
        if target is None:
            return None
        payload = {"requestId": request_id, "by": dataclasses.asdict(by)}
        try:
            ack = await self.node.ask(target, "lookup", payload, ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            return None
        return ack if isinstance(ack, dict) else None

    async def _lookup(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(self.chat.lookup(payload["requestId"], principal_of(payload["by"])))
        except NewAgeError as exc:
            return dict(exc.to_ack())
