"""The server-side queue in front of each extension.

SillyTavern generates one answer at a time. Rather than forwarding every
request at once (the extension would queue them where nobody sees it), each
extension gets at most ``extensionConcurrency`` requests at a time; the rest
wait here, ordered by priority (admins may raise it) and then by arrival.
A waiting requester hears ``REQUEST_STATUS_UPDATE`` ``queued`` with its
position, again whenever the position changes, and ``forwarded`` when the
request goes out. ``requestTimeout`` counts from then; the wait itself is
bounded by ``queueTimeout``. A cancelled waiting request just leaves the
queue: the extension never heard of it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from newage.domain.identity.presence import Presence
from newage.domain.llm.requests import LlmRequest, RequestTracker, TargetState
from newage.domain.llm.responses import Responder
from newage.domain.llm.routing import Router
from newage.domain.rooms.history import History
from newage.domain.rooms.status import StatusBoard
from newage.errors import ErrorCode, not_found
from newage.protocol.names import MemberStatus, RequestStatus
from newage.protocol.outbound import LlmRequestBody
from newage.settings import LiveSettings


@dataclass(slots=True)
class Waiting:
    request: LlmRequest
    payload: LlmRequestBody
    order: int
    since: float
    priority: int = 0
    told: int = 0  # the position the requester last heard

    def key(self) -> tuple[int, int]:
        return (-self.priority, self.order)


class ExtensionQueues:
    def __init__(
        self,
        tracker: RequestTracker,
        router: Router,
        presence: Presence,
        responder: Responder,
        status: StatusBoard,
        history: History,
        live: LiveSettings,
    ) -> None:
        self.tracker = tracker
        self.router = router
        self.presence = presence
        self.responder = responder
        self.status = status
        self.history = history
        self.live = live
        self._waiting: dict[str, list[Waiting]] = {}
        self._order = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        # a cluster: the node holding a request reorders its queue (None: none does)
        self.elsewhere: Callable[[str, int], Awaitable[dict[str, int] | None]] | None = None
        # the context an extension gets for a room (set by the chat service)
        self.context_of: Callable[[str], Awaitable[list[dict[str, Any]]]] = self._latest
        tracker.on_free.append(self._freed)
        router.backlog = self.length

    async def _latest(self, room: str) -> list[dict[str, Any]]:
        return await self.history.latest(room, self.live.current.extension_context_limit)

    def length(self, ext: str) -> int:
        return len(self._waiting.get(ext, ()))

    def waiting(self, ext: str) -> list[LlmRequest]:
        return [w.request for w in self._waiting.get(ext, ())]

    def positions(self, request: LlmRequest) -> dict[str, int]:
        return {
            ext: i + 1
            for ext, queue in self._waiting.items()
            for i, w in enumerate(queue)
            if w.request is request
        }

    def _free(self, ext: str) -> bool:
        limit = self.live.current.extension_concurrency
        return not self._waiting.get(ext) and self.tracker.in_flight(ext) < limit

    async def admit(self, request: LlmRequest, ext: str, payload: LlmRequestBody) -> int:
        """Send ``request`` to ``ext`` now (0) or queue it (its position)."""
        if self._free(ext):
            await self._send(request, ext, payload)
            return 0
        self.tracker.hold(request)
        entry = Waiting(request, payload, next(self._order), time.monotonic())
        self._waiting.setdefault(ext, []).append(entry)
        self._renumber(ext)
        return entry.told

    async def _send(self, request: LlmRequest, ext: str, payload: LlmRequestBody) -> None:
        self.tracker.enqueue(ext, request.request_id)
        await self.router.send(ext, payload, request)
        await self.status.set(ext, request.room, MemberStatus.PROCESSING)

    def _renumber(self, ext: str) -> None:
        queue = self._waiting.get(ext)
        if not queue:
            self._waiting.pop(ext, None)
            return
        queue.sort(key=Waiting.key)
        for i, entry in enumerate(queue, 1):
            if entry.told != i:
                entry.told = i
                self.responder.notify(
                    entry.request, RequestStatus.QUEUED.value, position=i, target=ext
                )

    def _freed(self, ext: str) -> None:
        if self._waiting.get(ext):
            task = asyncio.get_running_loop().create_task(self.pump(ext))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def pump(self, ext: str) -> None:
        """Forward waiting requests while ``ext`` has room for them."""
        limit = self.live.current.extension_concurrency
        while not self.closed and self._waiting.get(ext) and self.tracker.in_flight(ext) < limit:
            if not self.presence.extension_online(ext):
                return  # its disconnect fails what waits for it
            entry = self._waiting[ext].pop(0)
            self._renumber(ext)
            request = entry.request
            if request.targets.get(ext) is not TargetState.PENDING:
                continue
            # the context as it is now, not as it was when the request came
            entry.payload["context"] = await self.context_of(request.room)
            if request.targets.get(ext) is not TargetState.PENDING:
                continue  # cancelled meanwhile
            self.responder.notify(request, "forwarded", target=ext)
            await self._send(request, ext, entry.payload)

    def withdraw(self, request: LlmRequest) -> list[str]:
        """Take ``request`` out of every queue; the extensions it waited for."""
        left = []
        for ext, queue in list(self._waiting.items()):
            kept = [w for w in queue if w.request is not request]
            if len(kept) != len(queue):
                left.append(ext)
                self._waiting[ext] = kept
                self._renumber(ext)
        return left

    async def set_priority_anywhere(self, request_id: str, priority: int) -> dict[str, int]:
        """:meth:`set_priority`, on the node holding the request when not here."""
        if self.tracker.get(request_id) is None and self.elsewhere is not None:
            positions = await self.elsewhere(request_id, priority)
            if positions is not None:
                return positions
        return self.set_priority(request_id, priority)

    def set_priority(self, request_id: str, priority: int) -> dict[str, int]:
        """Reorder the queues ``request_id`` waits in; its new positions."""
        found = False
        for ext, queue in list(self._waiting.items()):
            for entry in queue:
                if entry.request.request_id == request_id:
                    entry.priority = priority
                    found = True
                    self._renumber(ext)
        if not found:
            raise not_found("No queued request with that id.", requestId=request_id)
        request = self.tracker.get(request_id)
        assert request is not None
        return self.positions(request)

    async def extension_gone(self, ext: str) -> None:
        """What waited for an extension that left fails at once (unavailable)."""
        await self._fail_all(ext, f"Extension {ext} disconnected.")

    async def close(self, reason: str) -> None:
        """The server stops: nothing more goes out, everything waiting fails
        (recorded, so the history shows what never got an answer)."""
        self.closed = True
        for ext in list(self._waiting):
            await self._fail_all(ext, reason, record=True)

    async def _fail_all(self, ext: str, reason: str, record: bool = False) -> None:
        for entry in self._waiting.pop(ext, []):
            entry.request.failure = ErrorCode.UNAVAILABLE
            if record:
                output_id = str(uuid.uuid4())
                status = RequestStatus.FAILED
                await self.responder.respond(entry.request, ext, "", output_id, status, reason)
            else:
                await self.responder.settle(entry.request, ext, RequestStatus.FAILED, reason)

    async def expire(self) -> None:
        """Requests that waited longer than ``queueTimeout`` fail (timeout)."""
        timeout = self.live.current.queue_timeout / 1000
        if timeout <= 0:
            return
        cutoff = time.monotonic() - timeout
        for ext, queue in list(self._waiting.items()):
            stale = [w for w in queue if w.since <= cutoff]
            if not stale:
                continue
            self._waiting[ext] = [w for w in queue if w.since > cutoff]
            self._renumber(ext)
            for entry in stale:
                entry.request.failure = ErrorCode.TIMEOUT
                reason = f"Request waited too long in the queue of {ext} (queueTimeout)."
                await self.responder.settle(entry.request, ext, RequestStatus.FAILED, reason)
