"""LLM requests in flight: who asked, which extensions answer, in what order.

The extension does not send reliable request ids, so each extension has a
FIFO of the requests forwarded to it; its head is "the request it is
answering now" (docs/protocol.md). Finished requests stay a while (TTL) so a
late regeneration with an explicit id still finds its room.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from newage.errors import ErrorCode
from newage.protocol.names import RequestMode, RequestStatus

if TYPE_CHECKING:
    from newage.domain.ops.request_log import RequestLog


class Kind(StrEnum):
    USER = "user"
    THINK = "think"


class TargetState(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    STOPPED = "stopped"
    CANCELLED = "cancelled"
    FAILED = "failed"


# the request's final status for its best target outcome, best first
_OUTCOMES = (
    (TargetState.COMPLETED, RequestStatus.COMPLETED),
    (TargetState.STOPPED, RequestStatus.STOPPED),
    (TargetState.CANCELLED, RequestStatus.CANCELLED),
)


def target_state(status: RequestStatus) -> TargetState:
    """How one target ended, for the status its answer (or failure) carries."""
    if status in (RequestStatus.FAILED, RequestStatus.STOPPED, RequestStatus.CANCELLED):
        return TargetState(status.value)
    return TargetState.COMPLETED


@dataclass(slots=True)
class LlmRequest:
    request_id: str
    room: str
    requester: str | None  # identity; None for think requests
    mode: RequestMode
    kind: Kind
    message_id: str | None
    targets: dict[str, TargetState] = field(default_factory=dict)
    status: RequestStatus = RequestStatus.PENDING
    responses: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None
    reported_processing: bool = False
    # extension -> the one /llm socket the request went to (of several tabs)
    sockets: dict[str, str] = field(default_factory=dict)
    # why a failed request failed, for callers that map it (timeout, gone)
    failure: ErrorCode | None = None
    stalled: bool = False  # told 'stalled'; the next chunk says 'processing' again
    answers: dict[str, str] = field(default_factory=dict)  # extension -> final text
    owner: str | None = None  # the requester's clientId, for its pending cap
    # a cluster: this node answers some targets of a request another node
    # holds; that node says the request's final status (docs/cluster.md)
    part: bool = False

    @property
    def open(self) -> bool:
        return self.finished is None

    @property
    def processing_news(self) -> bool:
        """Its next chunk or answer tells the room it is being processed
        (the first one, or the first after 'stalled')."""
        return not self.reported_processing or self.stalled

    def settle(self) -> RequestStatus | None:
        """Final status once every target answered or failed, else None."""
        states = self.targets.values()
        if any(s is TargetState.PENDING for s in states):
            return None
        for state, status in _OUTCOMES:
            if state in states:
                return status
        return RequestStatus.FAILED


class RequestTracker:
    def __init__(self) -> None:
        self.requests: dict[str, LlmRequest] = {}
        self._inflight: dict[str, deque[str]] = {}
        self._head_since: dict[str, float] = {}  # extension -> when its head became head
        self.last_answer: dict[str, float] = {}  # extension -> wall time of its last answer
        # called with an extension whenever one of its requests leaves it
        self.on_free: list[Callable[[str], None]] = []
        self.on_closed: list[Callable[[LlmRequest], None]] = []  # a request's final status
        self.on_opened: list[Callable[[LlmRequest], None]] = []
        self._pending_of: dict[str, set[str]] = {}  # clientId -> its forwarded open requests
        self.log: RequestLog | None = None  # what the monitor shows of each request

    def add(self, request: LlmRequest) -> None:
        self.requests[request.request_id] = request
        if self.log is not None:
            self.log.opened(request)
        for opened in self.on_opened:
            opened(request)

    def get(self, request_id: object) -> LlmRequest | None:
        if not isinstance(request_id, str):
            return None
        return self.requests.get(request_id)

    def get_open(self, request_id: object) -> LlmRequest | None:
        request = self.get(request_id)
        return request if request is not None and request.open else None

    def pending_of(self, owner: str) -> int:
        return len(self._pending_of.get(owner, ()))

    def hold(self, request: LlmRequest) -> None:
        """``request`` counts toward its client's pending cap until it ends
        (forwarded, or waiting in an extension's queue on the server)."""
        if request.owner is not None:
            self._pending_of.setdefault(request.owner, set()).add(request.request_id)

    def enqueue(self, ext: str, request_id: str) -> None:
        request = self.requests.get(request_id)
        if request is not None:
            self.hold(request)
        queue = self._inflight.setdefault(ext, deque())
        if not queue:
            self._head_since[ext] = time.monotonic()
        queue.append(request_id)
        if self.log is not None and request_id in self.requests:
            self.log.forwarded(self.requests[request_id], ext)

    def head(self, ext: str) -> LlmRequest | None:
        queue = self._inflight.get(ext)
        return self.requests.get(queue[0]) if queue else None

    def head_since(self, ext: str) -> float | None:
        return self._head_since.get(ext) if self._inflight.get(ext) else None

    def queued(self, ext: str) -> list[LlmRequest]:
        return [self.requests[r] for r in self._inflight.get(ext, ()) if r in self.requests]

    def in_flight(self, ext: str) -> int:
        return len(self._inflight.get(ext, ()))

    def extensions(self) -> list[str]:
        return [ext for ext, queue in self._inflight.items() if queue]

    def target_done(
        self, request: LlmRequest, ext: str, state: TargetState
    ) -> RequestStatus | None:
        """Record one target's outcome; return the request's final status
        when this was the last outstanding target."""
        if request.targets.get(ext) is TargetState.PENDING:
            request.targets[ext] = state
        queue = self._inflight.get(ext)
        if queue and request.request_id in queue:
            was_head = queue[0] == request.request_id
            queue.remove(request.request_id)
            if was_head:
                self._head_since[ext] = time.monotonic()
            if not queue:
                del self._inflight[ext]
                self._head_since.pop(ext, None)
            if state is TargetState.COMPLETED:
                self.last_answer[ext] = time.time()
            for listener in self.on_free:
                listener(ext)
        final = request.settle()
        if final is not None and request.open:
            request.status = final
            request.finished = time.monotonic()
            self._release(request)
            for closed in self.on_closed:
                closed(request)
            return final
        return None

    def _release(self, request: LlmRequest) -> None:
        if request.owner is None:
            return
        mine = self._pending_of.get(request.owner)
        if mine is not None:
            mine.discard(request.request_id)
            if not mine:
                del self._pending_of[request.owner]

    def touch(self, ext: str) -> None:
        """Activity from the extension counts as progress on its head."""
        if self._inflight.get(ext):
            self._head_since[ext] = time.monotonic()

    def open_count(self) -> int:
        return sum(1 for r in self.requests.values() if r.open)

    def evict(self, ttl: float) -> int:
        cutoff = time.monotonic() - ttl
        stale = [
            rid
            for rid, r in self.requests.items()
            if r.finished is not None and r.finished < cutoff
        ]
        for rid in stale:
            del self.requests[rid]
        return len(stale)
