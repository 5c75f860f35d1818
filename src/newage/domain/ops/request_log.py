"""What the monitor shows of LLM requests: state, timings and a trace.

The tracker forgets a request once it is done; this log keeps the last
``monitorRequestsKept`` of them with their timings (queue wait, time to
first token, tokens, duration) and a bounded list of what happened to each
one, and counts what the trends charts and the per-extension table need.
Every change of state is pushed to the admins (``REQUEST_STATE`` on
``/llm``, to ``monitor-room``) so the page needs no polling; in debug mode
each step is a log line too.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from newage.clock import iso_from_epoch
from newage.domain.ops.audit import Audit
from newage.domain.ports.delivery import Outbox, room_addr
from newage.domain.ports.peers import Peers
from newage.logs import log
from newage.protocol.names import MONITOR_ROOM, Ev, Namespace
from newage.protocol.outbound import RequestEntry
from newage.settings import LiveSettings

if TYPE_CHECKING:
    from newage.domain.llm.requests import LlmRequest

TRACE_CAP = 60  # events kept per request; a stuck request cannot grow without bound
FINAL = frozenset({"completed", "failed", "stopped", "cancelled"})
# what a state filter of the page selects
STATE_GROUPS: dict[str, frozenset[str]] = {
    "open": frozenset({"pending", "queued", "processing", "streaming", "stalled"}),
    "done": FINAL | {"submitted"},
    "failed": frozenset({"failed"}),
    "held": frozenset({"queued", "not_forwarded"}),  # HostSubmit and MasterOnly
}


@dataclass(slots=True)
class ExtensionStats:
    served: int = 0
    failed: int = 0
    last_answer: float | None = None


@dataclass(slots=True)
class Entry:
    request_id: str
    room: str
    requester: str | None
    mode: str
    kind: str
    created: float
    state: str = "pending"
    reason: str | None = None
    position: int | None = None
    targets: dict[str, str] = field(default_factory=dict)
    forwarded: float | None = None
    first_token: float | None = None
    finished: float | None = None
    tokens: int = 0
    trace: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRACE_CAP))

    def public(self, *, trace: bool = False) -> RequestEntry:
        def since(a: float | None, b: float | None) -> int | None:
            return None if a is None or b is None else round((b - a) * 1000)

        out: RequestEntry = {
            "requestId": self.request_id,
            "roomName": self.room,
            "requester": self.requester,
            "mode": self.mode,
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "position": self.position,
            "targets": dict(self.targets),
            "createdAt": iso_from_epoch(self.created),
            "finishedAt": iso_from_epoch(self.finished) if self.finished else None,
            "queueWaitMs": since(self.created, self.forwarded),
            "firstTokenMs": since(self.forwarded or self.created, self.first_token),
            "durationMs": since(self.created, self.finished),
            "tokens": self.tokens,
        }
        if trace:
            out["trace"] = list(self.trace)
        return out


@dataclass(slots=True)
class Totals:
    """Counters only ever growing, sampled by the trends series."""

    requests: int = 0
    tokens: int = 0
    failures: int = 0
    first_tokens: int = 0
    first_token_ms: float = 0.0


class RequestLog:
    def __init__(self, outbox: Outbox, live: LiveSettings, audit: Audit) -> None:
        self.outbox = outbox
        self.live = live
        self.audit = audit
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.extensions: dict[str, ExtensionStats] = {}
        self.totals = Totals()
        self.peers: Peers | None = None  # a cluster: the other nodes' logs

    # ------------------------------------------------------------------ recording
    def _event(self, entry: Entry, what: str, **detail: Any) -> None:
        known = {k: v for k, v in detail.items() if v is not None}
        entry.trace.append({"at": iso_from_epoch(time.time()), "event": what, **known})
        log.debug("request %s (%s): %s %s", entry.request_id, entry.room, what, known or "")

    def _push(self, entry: Entry) -> None:
        if self.live.current.mirror_to_monitors:
            self.outbox.emit(
                Namespace.LLM, Ev.REQUEST_STATE, entry.public(), [room_addr(MONITOR_ROOM)]
            )

    def opened(self, request: LlmRequest) -> None:
        entry = Entry(
            request.request_id,
            request.room,
            request.requester,
            request.mode.value,
            request.kind.value,
            time.time(),
        )
        self.entries.pop(request.request_id, None)
        self.entries[request.request_id] = entry
        while len(self.entries) > self.live.current.monitor_requests_kept:
            self.entries.popitem(last=False)
        self.totals.requests += 1
        self._event(entry, "received", room=request.room, by=request.requester)
        self._push(entry)

    def forwarded(self, request: LlmRequest, ext: str) -> None:
        entry = self.entries.get(request.request_id)
        if entry is None:
            return
        entry.targets[ext] = "pending"
        if entry.forwarded is None:
            entry.forwarded = time.time()
        entry.state = "processing"
        self._event(entry, "forwarded", to=ext)
        self._push(entry)

    def first_output(self, request: LlmRequest, ext: str | None = None) -> None:
        entry = self.entries.get(request.request_id)
        if entry is None or entry.first_token is not None:
            return
        entry.first_token = time.time()
        entry.state = "streaming"
        waited = entry.first_token - (entry.forwarded or entry.created)
        self.totals.first_tokens += 1
        self.totals.first_token_ms += waited * 1000
        self._event(entry, "first output", source=ext)
        self._push(entry)

    def tokens(self, request: LlmRequest, count: int) -> None:
        self.totals.tokens += count
        entry = self.entries.get(request.request_id)
        if entry is not None:
            entry.tokens += count

    def output_ended(self, request: LlmRequest, ext: str, status: str) -> None:
        stats = self.extensions.setdefault(ext, ExtensionStats())
        if status == "failed":
            stats.failed += 1
        else:
            stats.served += 1
            stats.last_answer = time.time()
        entry = self.entries.get(request.request_id)
        if entry is not None:
            entry.targets[ext] = status
            self._event(entry, "answer ended", source=ext, status=status, tokens=entry.tokens)

    def status(self, request: LlmRequest, label: str, reason: str | None, **extra: Any) -> None:
        entry = self.entries.get(request.request_id)
        extra.pop("message", None)  # the reason, passed on its own
        if entry is None or label == "forwarded":
            return  # forwarding is recorded when the request reaches the extension
        if label == "processing":
            # after a stall, or the first output: streaming once output came
            label = "streaming" if entry.first_token is not None else "processing"
            if entry.state == label:
                return
        entry.state = label
        if reason:
            entry.reason = reason
        if "position" in extra:
            entry.position = extra["position"]
        if label in FINAL and entry.finished is None:
            entry.finished = time.time()
            if label == "failed":
                self.totals.failures += 1
                self.audit.add(
                    "request.failed",
                    request.request_id,
                    level="warn",
                    actor="server",
                    room=request.room,
                    reason=reason or "no reason given",
                )
        detail = {k: v for k, v in {"reason": reason, **extra}.items() if v is not None}
        self._event(entry, label, **detail)
        self._push(entry)

    def submitted(self, request_ids: list[str], into: str) -> None:
        """HostSubmit: held requests went out merged into the master's ``into``;
        they are done waiting, and their trace says where they went."""
        for request_id in request_ids:
            entry = self.entries.get(request_id)
            if entry is None or entry.state != "queued":
                continue
            entry.state = "submitted"
            entry.finished = time.time()
            self._event(entry, "submitted", mergedInto=into)
            self._push(entry)

    # ------------------------------------------------------------------ queries
    def get(self, request_id: str) -> RequestEntry | None:
        entry = self.entries.get(request_id)
        return entry.public(trace=True) if entry is not None else None

    def page(
        self, state: str | None, search: str | None, offset: int, limit: int
    ) -> tuple[list[RequestEntry], int]:
        """Newest first."""
        group = STATE_GROUPS.get(state or "")
        needle = (search or "").lower()
        found = []
        for entry in reversed(self.entries.values()):
            if group is not None and entry.state not in group:
                continue
            if state and group is None and entry.state != state:
                continue
            if needle and not any(
                needle in (v or "").lower()
                for v in (entry.request_id, entry.room, entry.requester, *entry.targets)
            ):
                continue
            found.append(entry)
        return [e.public() for e in found[offset : offset + limit]], len(found)

    async def find(self, request_id: str) -> RequestEntry | None:
        """:meth:`get`, else (a cluster) the node that knows the request."""
        found = self.get(request_id)
        if found is not None or self.peers is None:
            return found
        got = await self.peers.gather("requests.get", request_id)
        if not got.answers:
            return None
        node = min(got.answers)  # a request lives on one node; any is right
        return cast(RequestEntry, {**got.answers[node], "node": node})

    async def page_all(
        self, state: str | None, search: str | None, offset: int, limit: int
    ) -> tuple[list[RequestEntry], int, list[str]]:
        """:meth:`page` over every node (a cluster): each node's newest
        ``offset + limit``, merged newest first, other nodes' items with their
        ``node``; and the nodes that did not answer in time."""
        if self.peers is None:
            return (*self.page(state, search, offset, limit), [])
        items, total = self.page(state, search, 0, offset + limit)
        got = await self.peers.gather("requests.page", [state, search, offset + limit])
        for node, (theirs, count) in got.answers.items():
            items += [cast(RequestEntry, {**item, "node": node}) for item in theirs]
            total += count
        # ISO timestamps of one format: their order is that of time
        items.sort(key=lambda item: item["createdAt"], reverse=True)
        return items[offset : offset + limit], total, got.missing

    def extension_stats(self, ext: str) -> dict[str, Any]:
        stats = self.extensions.get(ext, ExtensionStats())
        return {
            "served": stats.served,
            "failed": stats.failed,
            "lastAnswerAt": iso_from_epoch(stats.last_answer) if stats.last_answer else None,
        }
