"""LLM requests across nodes: a request lives on its extension's node.

When no extension of this node can take a request, it goes to a node that
has one: that node runs the normal intake for the requester (principal and
room are the same everywhere: the store is shared), so its queue, streams
and stream log are unchanged; what it sends the requester and the room
reaches them through the cluster's outbox. The ack comes back the same way.
Cancels of a request forwarded from here go to the node that holds it.

The node a request arrives at routes it over every node's extensions
(``cluster/loads.py``): one target on another node sends the whole request
there, with the choice; targets on several nodes (Broadcast) keep the
request here and hand each other node its part (``domain/llm/parts.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import OrderedDict
from typing import Any

from newage.cluster.loads import RemoteLoads
from newage.cluster.node import ClusterNode
from newage.cluster.views import VIEW_TIMEOUT
from newage.domain.identity.principal import Principal
from newage.domain.llm.chat import ChatService
from newage.domain.llm.requests import Kind, LlmRequest, RequestTracker, TargetState
from newage.domain.llm.resume import Resumer
from newage.domain.llm.routing import parse_targets
from newage.domain.ports.delivery import Outbox, identity_addr
from newage.domain.rooms.model import Room
from newage.errors import ErrorCode, NewAgeError
from newage.logs import log
from newage.protocol.llm import LlmRequestIn
from newage.protocol.names import ClientKind, Ev, Namespace, RequestMode, RequestStatus
from newage.protocol.outbound import LlmRequestBody

ASK_TIMEOUT = 10.0  # seconds for the other node's intake to answer
HOLDER_TTL = 86_400  # seconds a request's holder is known to every node (resume)
OWNERS_KEPT = 100_000  # forwarded request ids remembered (for their cancels)
EXTENSION = f"{Namespace.LLM.value} ext:"
NODE_GONE = "The server process handling this request stopped."


def principal_of(raw: dict[str, Any]) -> Principal:
    return Principal(**{**raw, "kind": ClientKind(raw["kind"])})


class RemoteRequests:
    def __init__(
        self,
        node: ClusterNode,
        chat: ChatService,
        tracker: RequestTracker,
        outbox: Outbox,
        resumer: Resumer,
    ) -> None:
        self.node = node
        self.chat = chat
        self.outbox = outbox
        self.resumer = resumer
        self._writes: set[asyncio.Task[Any]] = set()
        # forwarded from here: requestId -> its node (kept after it closes, for
        # GET_REQUEST and CANCEL_REQUEST), and the open ones with their requester
        # and room (failed here if their node dies)
        self.held: OrderedDict[str, str] = OrderedDict()
        self.owners: dict[str, tuple[str, str, str]] = {}
        # taken here for another node: requestId -> that node (told when it closes)
        self.origins: dict[str, str] = {}
        # held here, some targets answered by other nodes: requestId -> {target: node}
        self.parts: dict[str, dict[str, str]] = {}
        self.loads = RemoteLoads(node, chat.router)
        node.handlers["llm"] = self._run
        node.handlers["cancel"] = self._cancel
        node.handlers["closed"] = self._closed
        node.handlers["lookup"] = self._lookup
        node.handlers["resume"] = self._resume
        node.handlers["priority"] = self._priority
        node.handlers["part"] = self._part
        node.handlers["part-ended"] = self._part_ended
        node.handlers["part-cancel"] = self._part_cancel
        chat.parts.spread = self.spread
        chat.parts.cancel_parts = self.cancel_parts
        chat.queues.elsewhere = self.priority
        tracker.on_opened.append(self.opened)
        resumer.elsewhere = self.resume
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
        self, principal: Principal, sid: str | None, data: LlmRequestIn, chosen: str | None
    ) -> dict[str, Any] | None:
        """To the node of ``chosen`` (the target picked here), else of the
        first explicit target, else of any extension."""
        if chosen is not None:
            target = self.loads.node_of(chosen)
        else:
            target = self.node_for(parse_targets(data.target))
        if target is None:
            return None
        payload = {
            "from": self.node.id,
            "principal": dataclasses.asdict(principal),
            "sid": sid,
            "data": data.fields(),
            "chosen": [chosen] if chosen is not None else None,
        }
        try:
            ack = await self.node.ask(target, "llm", payload, ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            log.warning("cluster: node %s did not take request %s", target, data.request_id)
            return None
        if isinstance(ack, dict) and ack.get("status") == "ok" and not ack.get("duplicate"):
            for ext in ack.get("targets") or ():
                self.loads.sent(target, ext)
            room = str(ack.get("roomName", data.target_room or principal.identity))
            self.owners[data.request_id] = (target, principal.identity, room)
            self.held[data.request_id] = target
            while len(self.held) > OWNERS_KEPT:
                self.owners.pop(self.held.popitem(last=False)[0], None)
        return ack if isinstance(ack, dict) else None

    async def _run(self, payload: dict[str, Any]) -> dict[str, Any]:
        principal = principal_of(payload["principal"])
        data = LlmRequestIn.model_validate(payload["data"])
        chosen = payload.get("chosen")
        try:
            try:
                ack = await self.chat.request(
                    principal, payload["sid"], data, here=True, chosen=chosen
                )
            except NewAgeError as exc:
                if exc.code not in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND):
                    raise
                # the requester's node may have made its room (or member) a
                # moment ago and this node not reloaded it yet: once more, fresh
                await self.chat.rooms.resync()
                ack = await self.chat.request(
                    principal, payload["sid"], data, here=True, chosen=chosen
                )
        except NewAgeError as exc:
            return dict(exc.to_ack())
        request = self.chat.tracker.get(data.request_id)
        if request is not None and request.open and not ack.get("duplicate"):
            self.origins[data.request_id] = payload["from"]
        return dict(ack)

    def closed(self, request: LlmRequest) -> None:
        if self.chat.tracker.get(request.request_id) is request:  # not a recovered copy
            self.parts.pop(request.request_id, None)
        origin = self.origins.pop(request.request_id, None)
        if origin is None:
            return
        if request.part:  # the holder says the request's final status
            states = {ext: state.value for ext, state in request.targets.items()}
            ended = {"requestId": request.request_id, "states": states, "answers": request.answers}
            self.node.tell(origin, "part-ended", ended)
        else:
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
        for request_id, where in list(self.parts.items()):
            gone = {ext: "failed" for ext, n in where.items() if n == node}
            if gone:
                self.chat.parts.ended(request_id, gone, {}, NODE_GONE)

    # ------------------------------------------------------------------ parts
    async def spread(
        self, request: LlmRequest, room: Room, targets: list[str], body: LlmRequestBody
    ) -> dict[str, str]:
        """Each other node answers its targets of ``request``; those no node
        took, with why."""
        by_node: dict[str, list[str]] = {}
        failed: dict[str, str] = {}
        for ext in targets:
            node = self.loads.node_of(ext)
            if node is None:
                failed[ext] = f"Extension {ext} is not connected."
            else:
                by_node.setdefault(node, []).append(ext)
        shell = {
            "requestId": request.request_id,
            "room": room.name,
            "requester": request.requester,
            "mode": request.mode.value,
            "kind": request.kind.value,
            "messageId": request.message_id,
        }
        asks = [
            self.node.ask(
                node,
                "part",
                {"from": self.node.id, "request": shell, "targets": exts, "body": body},
                ASK_TIMEOUT,
            )
            for node, exts in by_node.items()
        ]
        where = self.parts.setdefault(request.request_id, {})
        answers = await asyncio.gather(*asks, return_exceptions=True)
        for (node, exts), answer in zip(by_node.items(), answers, strict=True):
            refused = answer.get("failed", {}) if isinstance(answer, dict) else None
            for ext in exts:
                if refused is None:
                    failed[ext] = NODE_GONE
                elif ext in refused:
                    failed[ext] = str(refused[ext])
                else:
                    where[ext] = node
                    self.loads.sent(node, ext)
        return failed

    async def _part(self, payload: dict[str, Any]) -> dict[str, Any]:
        shell = payload["request"]
        request = LlmRequest(
            shell["requestId"],
            shell["room"],
            shell["requester"],
            RequestMode(shell["mode"]),
            Kind(shell["kind"]),
            shell["messageId"],
            part=True,
        )
        if self.chat.tracker.get(request.request_id) is not None:
            return {"failed": dict.fromkeys(payload["targets"], "Duplicate requestId.")}
        self.origins[request.request_id] = payload["from"]
        failed = await self.chat.parts.take(
            request, payload["targets"], payload["body"], self.chat.on_forward
        )
        if len(failed) == len(payload["targets"]):
            self.origins.pop(request.request_id, None)
        return {"failed": failed}

    async def _part_ended(self, payload: dict[str, Any]) -> None:
        self.chat.parts.ended(payload["requestId"], payload["states"], payload["answers"])

    async def cancel_parts(self, request: LlmRequest) -> list[str]:
        """Each node answering targets of ``request`` cancels them; those targets."""
        where = self.parts.get(request.request_id, {})
        open_ = [e for e, n in where.items() if request.targets.get(e) is TargetState.PENDING]
        for node in {where[e] for e in open_}:
            self.node.tell(node, "part-cancel", request.request_id)
        return open_

    async def _part_cancel(self, request_id: str) -> None:
        with contextlib.suppress(NewAgeError):
            await self.chat.cancel(request_id, None)

    async def cancel(self, request_id: str, by: Principal | None) -> dict[str, Any] | None:
        target = await self.holder(request_id)
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
        target = await self.holder(request_id)
        if target is None:
            return None
        payload = {"requestId": request_id, "by": dataclasses.asdict(by)}
        try:
            # a view, not an intake: it waits no longer than the monitor's
            # other views (a holder that just died would hold GET_REQUEST
            # for the whole intake timeout)
            ack = await self.node.ask(target, "lookup", payload, VIEW_TIMEOUT)
        except (TimeoutError, ConnectionError):
            return None
        return ack if isinstance(ack, dict) else None

    async def _lookup(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(self.chat.lookup(payload["requestId"], principal_of(payload["by"])))
        except NewAgeError as exc:
            return dict(exc.to_ack())

    # ------------------------------------------------------------------ resume
    def opened(self, request: LlmRequest) -> None:
        """Every node may have to find this request (a requester that
        reconnects to another node resumes its stream from there)."""
        if request.part:  # the node holding it answers for it
            return
        key = self.node.key("req", request.request_id)
        write = self.node.redis.set(key, self.node.id, ex=HOLDER_TTL)
        self.node.owned[key] = None
        while len(self.node.owned) > OWNERS_KEPT:
            self.node.owned.popitem(last=False)
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def holder(self, request_id: str) -> str | None:
        found = self.held.get(request_id)
        if found is None:
            raw = await self.node.redis.get(self.node.key("req", request_id))
            found = raw.decode() if isinstance(raw, bytes) else raw
        return found if found != self.node.id else None

    async def resume(
        self,
        by: Principal,
        sid: str,
        request_id: str,
        after_seq: int,
        output_id: str | None,
        epoch: str | None,
    ) -> dict[str, Any] | None:
        target = await self.holder(request_id)
        if target is None:
            return None
        payload = {
            "from": self.node.id,
            "by": dataclasses.asdict(by),
            "sid": sid,
            "args": [request_id, after_seq, output_id, epoch],
        }
        try:
            ack = await self.node.ask(target, "resume", payload, ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            return None
        return ack if isinstance(ack, dict) else None

    async def _resume(self, payload: dict[str, Any]) -> dict[str, Any]:
        sid = payload["sid"]
        # the replay goes out at once, maybe before that node's directory
        # says it has this socket
        self.node.assume(payload["from"], f"{Namespace.LLM.value} {sid}")
        try:
            return dict(self.resumer.resume(principal_of(payload["by"]), sid, *payload["args"]))
        except NewAgeError as exc:
            return dict(exc.to_ack())

    # ------------------------------------------------------------------ priority
    async def priority(self, request_id: str, priority: int) -> dict[str, int] | None:
        """New positions from the node holding the request (its error, such
        as "not queued", is raised here as it was there)."""
        target = await self.holder(request_id)
        if target is None:
            return None
        try:
            answer = await self.node.ask(target, "priority", [request_id, priority], ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            return None
        if isinstance(answer, dict) and answer.get("status") == "error":
            raise NewAgeError(ErrorCode(answer["code"]), answer["message"], requestId=request_id)
        return answer if isinstance(answer, dict) else None

    async def _priority(self, payload: list[Any]) -> dict[str, Any]:
        try:
            return dict(self.chat.queues.set_priority(payload[0], payload[1]))
        except NewAgeError as exc:
            return dict(exc.to_ack())
