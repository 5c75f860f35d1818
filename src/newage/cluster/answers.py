"""The OpenAI-compatible API's answers across nodes (docs/cluster.md).

An API caller follows an answer through ``Responder.watches``, an
in-process feed; a request the API's node forwarded is answered on its
extension's node. That node therefore keeps a :class:`Relay` among the
request's watches, which sends each chunk and the end to the API nodes
following it, on the same delivery streams as everything else: one stream
per destination node, so the order per request is the order in which the
holding node relayed them. The API's node hands them to its own watches.

The relay is set up before the intake runs there (an immediate answer is
not missed), or, for ``GET .../stream``, in the same synchronous step as
the replay of the stream log. What crosses is bounded as the answer is
(``maxAnswerBytes`` per output); a relay ends with its answer, when its
request closes, when its API node dies or when that node no longer has
anyone following the request.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from typing import Any

import orjson

from newage.cluster.node import ASK, ClusterNode
from newage.cluster.requests import ASK_TIMEOUT, NODE_GONE, RemoteRequests, principal_of
from newage.domain.identity.principal import Principal
from newage.domain.llm.api import AnswerFeed, Event, Feeds, LlmApi, Piece
from newage.domain.llm.requests import LlmRequest
from newage.domain.llm.responses import AnswerWatch, Ended
from newage.domain.llm.resume import Replay, gone
from newage.errors import ErrorCode, NewAgeError, unavailable
from newage.protocol.names import RequestStatus

RELAY_KEPT = 30.0  # seconds a closed request's relay may still wait for its end
FOLLOWED_KEPT = 100_000  # followed answers remembered with their node (node death)
HOLDER_GONE = "The server process that held this answer stopped; read the history."
NEVER_SENT = (RequestStatus.NOT_FORWARDED, RequestStatus.QUEUED)


class Relay:
    """On the holding node: one request's answer, for the API nodes following it."""

    def __init__(self, hub: ApiAnswers, request_id: str) -> None:
        self.hub = hub
        self.request_id = request_id
        self.nodes: set[str] = set()

    def chunk(self, ext: str, text: str, seq: int) -> None:
        self.hub.send(self, [self.request_id, ext, seq, text])

    def ended(self, ext: str, end: Ended) -> None:
        failure = end.failure.value if end.failure is not None else None
        self.hub.send(
            self, [self.request_id, ext, -1, end.text, end.status.value, end.reason, failure]
        )
        self.hub.relay_ended(self)


def feeds_of(watch: AnswerWatch) -> list[AnswerWatch]:
    return list(watch.feeds) if isinstance(watch, Feeds) else [watch]


class ApiAnswers:
    def __init__(self, node: ClusterNode, remote: RemoteRequests, api: LlmApi) -> None:
        self.node = node
        self.remote = remote
        self.api = api
        self.tracker = remote.chat.tracker
        # holding node: requestId -> its relay
        self.relays: dict[str, Relay] = {}
        # API node: what arrives for a request while a follow waits for its replay
        self.buffers: dict[str, list[list[tuple[str, Event]]]] = {}
        # API node: answers followed from another node than the request's
        # forwarder (those are in ``remote.held``) -> that node
        self.followed: OrderedDict[str, str] = OrderedDict()
        intake = node.handlers["llm"]

        async def llm(payload: dict[str, Any]) -> Any:
            if payload.get("sid") is not None:  # a socket's request: no feed to relay
                return await intake(payload)
            request_id = str(payload["data"].get("requestId"))
            relay = self.relay_to(request_id, payload["from"])
            try:
                return await intake(payload)
            finally:
                request = self.tracker.get(request_id)
                if request is None or request.status in NEVER_SENT:
                    self.unwatch(relay, payload["from"])

        node.handlers["llm"] = llm
        node.handlers["api-answer"] = self._answer
        node.handlers["api-follow"] = self._follow
        node.handlers["api-unwatch"] = self._unwatch
        node.on_node_gone.append(self.node_gone)
        self.tracker.on_closed.append(self.closed)
        api.follow_elsewhere = self.follow

    # ------------------------------------------------------------ holding node
    def relay_to(self, request_id: str, node: str) -> Relay:
        relay = self.relays.get(request_id)
        if relay is None:
            relay = self.relays[request_id] = Relay(self, request_id)
            self.api.attach(request_id, relay)
        relay.nodes.add(node)
        return relay

    def send(self, relay: Relay, item: list[Any]) -> None:
        if relay.nodes:
            self.node.send(relay.nodes, orjson.dumps([ASK, "", self.node.id, "api-answer", item]))

    def drop(self, relay: Relay) -> None:
        if self.relays.get(relay.request_id) is relay:
            del self.relays[relay.request_id]
            self.api.detach(relay.request_id, relay)

    def unwatch(self, relay: Relay, node: str) -> None:
        relay.nodes.discard(node)
        if not relay.nodes:
            self.drop(relay)

    def relay_ended(self, relay: Relay) -> None:
        request = self.tracker.get(relay.request_id)
        if request is None or not request.open:
            self.drop(relay)

    def closed(self, request: LlmRequest) -> None:
        """Its end is relayed a moment after it closes (the history write
        comes first); a relay whose end never comes goes anyway."""
        relay = self.relays.get(request.request_id)
        if relay is not None:
            asyncio.get_running_loop().call_later(RELAY_KEPT, self.drop, relay)

    async def _follow(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The replay, and the relay of the live rest, in one synchronous step."""
        request_id = str(payload["requestId"])
        try:
            replay = self.api.resumer.replay(
                principal_of(payload["by"]), request_id, int(payload["afterSeq"])
            )
        except NewAgeError as exc:
            return dict(exc.to_ack())
        request = self.tracker.get(request_id)
        if replay.end is None and request is not None and request.open:
            self.relay_to(request_id, payload["from"])
        return {"status": "ok", **dataclasses.asdict(replay)}

    async def _unwatch(self, payload: list[str]) -> None:
        node, request_id = payload
        relay = self.relays.get(request_id)
        if relay is not None:
            self.unwatch(relay, node)

    # ------------------------------------------------------------ API node
    async def _answer(self, item: list[Any]) -> None:
        """One relayed chunk or end. Synchronous to the end: the tasks that
        run these start in the order the delivery stream had them."""
        request_id, ext, seq, text, *end = item
        event: Event
        if seq >= 0:
            event = Piece(text, seq)
        else:
            failure = ErrorCode(end[2]) if end[2] is not None else None
            event = Ended(RequestStatus(end[0]), text, end[1], failure)
            self.followed.pop(request_id, None)
        for buffer in self.buffers.get(request_id, ()):
            buffer.append((ext, event))
        watch = self.api.responder.watches.get(request_id)
        if watch is None:
            if request_id not in self.buffers:  # no one here follows it any more
                holder = self.followed.pop(request_id, None) or self.remote.held.get(request_id)
                if holder is not None:
                    self.node.tell(holder, "api-unwatch", [self.node.id, request_id])
        elif isinstance(event, Piece):
            watch.chunk(ext, text, seq)
        else:
            watch.ended(ext, event)

    async def follow(
        self, by: Principal, request_id: str, after_seq: int
    ) -> tuple[Replay, list[Event]] | None:
        """The replay from the node holding ``request_id`` and what it relayed
        since (None: no node holds it)."""
        holder = await self.remote.holder(request_id)
        if holder is None:
            return None
        if holder not in self.node.entries:  # its stream log went with it
            raise gone(HOLDER_GONE, request_id)
        buffer: list[tuple[str, Event]] = []
        self.buffers.setdefault(request_id, []).append(buffer)
        payload = {
            "from": self.node.id,
            "by": dataclasses.asdict(by),
            "requestId": request_id,
            "afterSeq": after_seq,
        }
        try:
            answer = await self.node.ask(holder, "api-follow", payload, ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            answer = None
        finally:
            buffers = self.buffers[request_id]
            buffers.remove(buffer)
            if not buffers:
                del self.buffers[request_id]
        if not isinstance(answer, dict):
            raise unavailable(NODE_GONE)
        if answer.get("status") == "error":
            raise NewAgeError(ErrorCode(answer["code"]), answer["message"], requestId=request_id)
        chunks = [(int(seq), str(text)) for seq, text in answer["chunks"]]
        replay = Replay(answer["room"], answer["ext"], chunks, answer["end"], answer["prefix"])
        if replay.end is None:
            self.followed[request_id] = holder
            while len(self.followed) > FOLLOWED_KEPT:
                self.followed.popitem(last=False)
        last = chunks[-1][0] if chunks else after_seq
        # what was relayed for another follower here before the replay: in it
        later = [
            event
            for ext, event in buffer
            if ext == replay.ext and not (isinstance(event, Piece) and event.seq <= last)
        ]
        return replay, later

    async def node_gone(self, node: str) -> None:
        """Its relays stop; the answers it held fail for their callers here."""
        for relay in list(self.relays.values()):
            self.unwatch(relay, node)
        failed = Ended(RequestStatus.FAILED, "", NODE_GONE, ErrorCode.UNAVAILABLE)
        for request_id, watch in list(self.api.responder.watches.items()):
            holder = self.followed.get(request_id) or self.remote.held.get(request_id)
            if holder != node:
                continue
            self.followed.pop(request_id, None)
            for feed in feeds_of(watch):
                if isinstance(feed, AnswerFeed):
                    feed.ended(feed.ext, failed)
