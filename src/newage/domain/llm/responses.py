"""Turning an extension's finished (or failed) output into history and news.

One place decides what a response is: it is recorded (``NEW_MESSAGE``),
announced (``LLM_RESPONSE``), counted against its request (one answer per
target), and the requester learns the request's status
(``REQUEST_STATUS_UPDATE`` ``processing``/``completed``/``failed``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

from newage.clock import iso_now
from newage.domain.llm.requests import Kind, LlmRequest, RequestTracker, target_state
from newage.domain.ports.delivery import Outbox, identity_addr
from newage.domain.rooms.history import History
from newage.domain.rooms.status import StatusBoard
from newage.errors import ErrorCode, NewAgeError, unavailable
from newage.logs import log
from newage.protocol.names import Ev, MemberStatus, Namespace, RequestStatus
from newage.protocol.outbound import (
    ErrorEvent,
    LlmResponse,
    NonStream,
    RequestStatusUpdate,
    StatusDetail,
    StreamData,
    StreamEnd,
)

Observer = Callable[[str, float], None]  # (final status, seconds) -> metrics
FINAL = frozenset(
    s.value
    for s in (
        RequestStatus.COMPLETED,
        RequestStatus.FAILED,
        RequestStatus.STOPPED,
        RequestStatus.CANCELLED,
    )
)


@dataclass(frozen=True, slots=True)
class Ended:
    """How one extension's answer to a request ended."""

    status: RequestStatus
    text: str
    reason: str | None
    failure: ErrorCode | None

    @property
    def failed(self) -> bool:
        return self.status is RequestStatus.FAILED

    def error(self) -> NewAgeError:
        """The failure as the caller should see it."""
        message = self.reason or "The extension failed to answer."
        if self.failure is ErrorCode.TIMEOUT:
            return NewAgeError(ErrorCode.TIMEOUT, message)
        if self.failure is ErrorCode.UNAVAILABLE:
            return unavailable(message)
        return NewAgeError(ErrorCode.UPSTREAM, message)


class AnswerWatch(Protocol):
    """A caller without a socket (the HTTP API) following one request."""

    def chunk(self, ext: str, text: str, seq: int) -> None: ...

    def ended(self, ext: str, end: Ended) -> None: ...


class Responder:
    def __init__(
        self,
        outbox: Outbox,
        tracker: RequestTracker,
        history: History,
        status: StatusBoard,
        audience: Callable[[str], list[str]],
        observe: Observer | None = None,
    ) -> None:
        self.outbox = outbox
        self.tracker = tracker
        self.history = history
        self.status = status
        self.audience = audience  # room -> addresses of its human audience
        self.observe = observe
        self.watches: dict[str, AnswerWatch] = {}  # requestId -> its watcher
        # a target's outcome is recorded (the pending answer can go)
        self.on_settled: Callable[[str, str], Awaitable[None]] | None = None

    def to_room(
        self,
        room: str,
        event: str,
        data: StreamData | StreamEnd | NonStream | LlmResponse,
        extra: list[str] | None = None,
    ) -> None:
        """To the room's audience, and the sockets in ``extra`` (each once)."""
        to = self.audience(room)
        if extra:
            to = to + extra
        self.outbox.emit(Namespace.LLM, event, data, to, skip_extensions=True)

    async def report_processing(self, request: LlmRequest) -> None:
        """The first sign of life of a request (its first chunk or answer)."""
        if not request.processing_news:
            return
        request.reported_processing = True
        if self.tracker.log is not None:
            self.tracker.log.first_output(request)
        request.stalled = False
        await self._status_update(request, "processing", None)

    async def respond(
        self,
        request: LlmRequest,
        ext: str,
        text: str,
        output_id: str,
        status: RequestStatus,
        reason: str | None = None,
        before_news: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any] | None:
        """Record an answer of ``ext`` (partial and marked incomplete when
        failed) and settle the request for that target. ``before_news``
        runs once the answer is durable and before anyone hears of it."""
        message = None
        request.answers[ext] = text
        if text or status is RequestStatus.FAILED:
            body = self._body(request, ext, text, output_id, status, reason)
            response_id = str(body["responseId"])
            await self.history.persist(request.room, "response", body)
            if before_news is not None:
                await before_news()
                before_news = None
            await self.history.announce(request.room, "response", body)
            message = body
            request.responses.append(response_id)
            response: LlmResponse = {
                "roomName": request.room,
                "requestId": request.request_id,
                "responseId": response_id,
                "messageId": body["messageId"],
                "identity": ext,
                "data": text,
                "message": text,
                "outputId": output_id,
                "status": status.value,
            }
            self.to_room(request.room, Ev.LLM_RESPONSE, response)
        if before_news is not None:
            await before_news()
        await self.settle(request, ext, status, reason, message)
        return message

    async def cancelled(self, request: LlmRequest, targets: list[str]) -> None:
        """The requester learns at once that ``request`` is cancelled."""
        for ext in targets:
            await self.status.set(ext, request.room, MemberStatus.IDLE)
        if self.observe is not None:
            self.observe(RequestStatus.CANCELLED.value, time.monotonic() - request.created)
        await self._status_update(request, RequestStatus.CANCELLED.value, None)
        watch = self.watches.get(request.request_id)
        for ext in targets:
            if self.on_settled is not None:
                await self.on_settled(request.request_id, ext)
            if watch is not None:
                watch.ended(ext, Ended(RequestStatus.CANCELLED, "", None, None))

    async def keep_cancelled(
        self, request: LlmRequest, ext: str, text: str, output_id: str
    ) -> None:
        """What an extension still sent for a cancelled request: kept in the
        history, marked, and announced as a history entry only (the
        requester already had the end of the request)."""
        if not text:
            return
        body = self._body(request, ext, text, output_id, RequestStatus.CANCELLED, None)
        body["cancelled"] = True
        await self.history.record(request.room, "response", body)
        request.responses.append(str(body["responseId"]))

    def _body(
        self,
        request: LlmRequest,
        ext: str,
        text: str,
        output_id: str,
        status: RequestStatus,
        reason: str | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messageId": str(uuid.uuid4()),
            "responseId": str(uuid.uuid4()),
            "requestId": request.request_id,
            "identity": ext,
            "data": text,
            "message": text,
            "isResponse": True,
            "fromLlm": True,
            "fromClient": False,
            "outputId": output_id,
            "requester": request.requester,
            "status": status.value,
            # a stopped or cancelled answer is cut short as much as a failed one
            "incomplete": status is not RequestStatus.COMPLETED,
            "timestamp": iso_now(),
        }
        if request.kind is Kind.THINK:
            body["type"] = "THINK_RESPONSE"
        if reason:
            body["error"] = reason
        return body

    async def settle(
        self,
        request: LlmRequest,
        ext: str,
        status: RequestStatus,
        reason: str | None,
        message: dict[str, Any] | None = None,
    ) -> None:
        state = target_state(status)
        was_open = request.open
        final = self.tracker.target_done(request, ext, state)
        if self.tracker.log is not None:
            self.tracker.log.output_ended(request, ext, status.value)
        if self.on_settled is not None:
            await self.on_settled(request.request_id, ext)
        await self.status.set(ext, request.room, MemberStatus.IDLE)
        watch = self.watches.get(request.request_id)
        if watch is not None:
            text = str(message.get("data") or "") if message else ""
            watch.ended(ext, Ended(status, text, reason, request.failure))
        if final is None:
            # a late extra answer to a finished request keeps its status
            label = "processing" if was_open else request.status.value
        else:
            label = final.value
            if self.observe is not None:
                self.observe(final.value, time.monotonic() - request.created)
        await self._status_update(
            request, label, reason if status is RequestStatus.FAILED else None, message
        )
        if status is RequestStatus.FAILED:
            log.debug("request %s failed for %s: %s", request.request_id, ext, reason)

    async def _status_update(
        self,
        request: LlmRequest,
        label: str,
        reason: str | None,
        message: dict[str, Any] | None = None,
    ) -> None:
        extra: StatusDetail = {"message": reason} if reason else {}
        self.notify(request, label, message["responseId"] if message else None, **extra)

    def notify(
        self,
        request: LlmRequest,
        label: str,
        response_id: str | None = None,
        **extra: Unpack[StatusDetail],
    ) -> None:
        """``REQUEST_STATUS_UPDATE`` to the requester (none for think requests);
        every status goes through here, so the monitor's request log hears it too."""
        if self.tracker.log is not None:
            self.tracker.log.status(request, label, extra.get("message"), **extra)
        if request.kind is Kind.THINK or request.requester is None:
            return
        if request.part and label in FINAL:
            return  # the node holding the request says how it ended, once
        payload: RequestStatusUpdate = {
            "mode": request.mode.value,
            "roomName": request.room,
            "requestId": request.request_id,
            "responseId": response_id,
            "status": label,
            **extra,
        }
        self.outbox.emit(
            Namespace.LLM, Ev.REQUEST_STATUS_UPDATE, payload, [identity_addr(request.requester)]
        )

    async def notify_error(self, request: LlmRequest, message: str, detail: Any) -> None:
        """An extension's own failure report reaches the requester as ERROR."""
        if request.requester is None:
            return
        notice: ErrorEvent = {"message": message, "error": detail, "requestId": request.request_id}
        self.outbox.emit(Namespace.LLM, Ev.ERROR, notice, [identity_addr(request.requester)])
