"""Assembling the extension's token streams into responses (docs/protocol.md).

The real extension sends, per generation, one ``outputId``; per token a new
``streamId`` with ``CLIENT_STREAM_START``, five data sub-chunks and
``CLIENT_STREAM_END``; and nothing at the end of the generation. So an
output is finished by: a new ``outputId`` from the same extension,
``STOP_PROCESSING``, a non-stream ``message`` for the same request,
``ERROR``, ``CLIENT_STREAM_DATA_FAILED``, ``final: true`` on an END, idle
time (``streamFinalizeIdleMs``), or the extension's ``/llm`` socket going.

Chunks are relayed as ``SERVER_STREAM_DATA`` in arrival order (events of
one connection are handled in order); with ``streamCoalesceMs`` > 0 the
chunks of one output arriving within that window go out as one event.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, cast

from newage.domain.llm.outputs import Output
from newage.domain.llm.requests import LlmRequest, RequestTracker, TargetState
from newage.domain.llm.responses import Responder
from newage.domain.ports.streamlog import StreamLog
from newage.errors import ErrorCode
from newage.logs import log
from newage.protocol.names import Ev, RequestStatus, StreamType
from newage.protocol.outbound import NonStream, StreamData, StreamEnd
from newage.protocol.surrogates import hold_back, repair
from newage.settings import LiveSettings

ENDED_KEPT = 10_000  # ended outputs remembered for late continuations


def _utf8_len(text: str) -> int:
    # isascii() reads a flag of the string: no copy for the common case
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class StreamService:
    def __init__(
        self, tracker: RequestTracker, responder: Responder, live: LiveSettings, log: StreamLog
    ) -> None:
        self.tracker = tracker
        self.responder = responder
        self.live = live
        self.log = log
        # requestId -> sockets that resumed it and hear it live besides its room
        self.followers: dict[str, list[str]] = {}
        self.current: dict[str, Output] = {}  # extension -> its open output
        self._streams: dict[tuple[str, str], Output] = {}  # (extension, streamId)
        # recently ended outputs: (extension, outputId) -> (request, last seq)
        self._ended: OrderedDict[tuple[str, str], tuple[LlmRequest, int]] = OrderedDict()
        self._cut_outputs: OrderedDict[tuple[str, str], None] = OrderedDict()  # too long

    @property
    def active(self) -> int:
        return len(self.current)

    # ------------------------------------------------------------------ resolution
    def resolve(self, ext: str, request_id: Any) -> LlmRequest | None:
        """Explicit id of a request sent to ``ext``, else the oldest request
        in flight for ``ext`` (the extension's ids are unreliable)."""
        explicit = self.tracker.get(request_id)
        if explicit is not None and ext in explicit.targets:
            # an explicit id may add a late answer (regeneration, multi-target)
            return explicit
        return self.tracker.head(ext)

    # ------------------------------------------------------------------ stream events
    async def start(self, ext: str, stream_id: str, output_id: str, request_id: Any) -> None:
        current = self.current.get(ext)
        if current is not None and current.output_id != output_id:
            await self.finish(current, RequestStatus.COMPLETED)
            current = None
        if current is None:
            ended = self._ended.pop((ext, output_id), None)
            if (ext, output_id) in self._cut_outputs:
                current = Output(output_id, ext, None)  # the rest of a cut answer
            elif ended is not None:
                # More of an output already ended by idle time (the stream
                # stalled longer than streamFinalizeIdleMs): it still
                # belongs to its own request, not to the next in the queue.
                log.warning("output %s of %s continues after its end", output_id, ext)
                current = Output(output_id, ext, ended[0], seq=ended[1], continued=True)
            else:
                request = self.resolve(ext, request_id)
                if request is None:
                    log.warning("unsolicited output %s from %s: dropped", output_id, ext)
                current = Output(output_id, ext, request)
            self.current[ext] = current
        current.begin(stream_id)
        current.last_activity = time.monotonic()
        self._streams[(ext, stream_id)] = current
        self.tracker.touch(ext)

    async def data(self, ext: str, stream_id: str, index: int, text: str, type_: int) -> None:
        output = self._streams.get((ext, stream_id))
        if output is None:
            log.warning("data for unknown stream %s from %s: ignored", stream_id, ext)
            return
        chunks = output.streams[stream_id]
        output.last_activity = time.monotonic()
        self.tracker.touch(ext)
        if output.request is None:
            return  # swallowed: nothing to keep
        settings = self.live.current
        previous = chunks.get(index)
        # a retried or repeated chunk replaces the one at its index: the
        # answer grows by the difference, not by the whole chunk again
        size = output.size + _utf8_len(text) - (_utf8_len(previous) if previous else 0)
        if size > settings.max_answer_bytes:
            await self._cut(output)
            return
        output.size = size
        if previous == text and type_ != StreamType.STREAM_DATA_RETRY:
            return  # a repeat of what came: nothing changes
        output.put(stream_id, chunks, index, text)
        if previous is not None:
            return  # a retry or a changed repeat: the text has it, nothing is relayed again
        if not text or output.cancelled:
            return
        text, output.held = hold_back(output.held + text)
        text = repair(text)
        if not text:
            return
        if output.request.processing_news:  # (no coroutine per chunk otherwise)
            await self.responder.report_processing(output.request)
        if settings.stream_coalesce_ms > 0:
            output.pending.append((stream_id, index, type_, text))
            if output.flush is None:
                loop = asyncio.get_running_loop()
                output.flush = loop.call_later(
                    settings.stream_coalesce_ms / 1000, self._flush, output
                )
            return
        self._send(output, stream_id, index, type_, text, 1)

    async def end(
        self,
        ext: str,
        stream_id: str,
        final: bool,
        status: RequestStatus = RequestStatus.COMPLETED,
    ) -> None:
        # the stream stays addressable until its output ends: a retry of one
        # of its chunks may still come
        output = self._streams.get((ext, stream_id))
        if output is None:
            log.warning("end of unknown stream %s from %s: ignored", stream_id, ext)
            return
        output.last_activity = time.monotonic()
        if final:
            await self.finish(output, status)

    async def failed(self, ext: str, stream_id: str) -> None:
        output = self._streams.get((ext, stream_id))
        if output is not None:
            await self.finish(
                output, RequestStatus.FAILED, "The extension reported a failed chunk."
            )

    async def _cut(self, output: Output) -> None:
        """The answer grew past maxAnswerBytes: it ends, failed, with what
        came before this chunk; the rest of the output is swallowed."""
        limit = self.live.current.max_answer_bytes
        self._cut_outputs[(output.ext, output.output_id)] = None
        while len(self._cut_outputs) > ENDED_KEPT:
            self._cut_outputs.popitem(last=False)
        await self.finish(
            output,
            RequestStatus.FAILED,
            f"The answer was longer than {limit} bytes (maxAnswerBytes) and was cut off.",
        )

    # ------------------------------------------------------------------ relaying
    def _flush(self, output: Output) -> None:
        if output.flush is not None:
            output.flush.cancel()
            output.flush = None
        if not output.pending:
            return
        pending, output.pending = output.pending, []
        stream_id, index, type_, _ = pending[0]
        text = "".join(p[3] for p in pending)
        self._send(output, stream_id, index, type_, text, len(pending))

    def _send(
        self, output: Output, stream_id: str, index: int, type_: int, text: str, count: int
    ) -> None:
        request = output.request
        assert request is not None
        output.seq += 1
        payload: StreamData = {
            "requestId": request.request_id,
            "outputId": output.output_id,
            "streamId": stream_id,
            "chunkIndex": index,
            "type": type_,
            "data": text,
            "source": output.ext,
            "identity": output.ext,
            "roomName": request.room,
            "seq": output.seq,
            "chunks": count,
        }
        # the log's port keeps plain dicts; a cast costs nothing per token
        self.log.append(request.request_id, output.output_id, request.room, cast(Any, payload))
        self.responder.to_room(
            request.room, Ev.SERVER_STREAM_DATA, payload, self.followers.get(request.request_id)
        )
        if self.responder.watches:
            watch = self.responder.watches.get(request.request_id)
            if watch is not None:
                watch.chunk(output.ext, text, output.seq)

    def _end(self, request: LlmRequest, payload: StreamEnd) -> None:
        """Relay (and keep) an output's SERVER_STREAM_END."""
        output_id = payload["outputId"]
        if output_id is not None:
            self.log.end(request.request_id, output_id, request.room, cast(Any, payload))
        followers = self.followers.get(request.request_id)
        self.responder.to_room(request.room, Ev.SERVER_STREAM_END, payload, followers)

    # ------------------------------------------------------------------ finishing
    async def finish(
        self,
        output: Output,
        status: RequestStatus,
        reason: str | None = None,
        text: str | None = None,
    ) -> None:
        if output.done:
            return
        output.done = True
        if self.current.get(output.ext) is output:
            del self.current[output.ext]
        for stream_id in output.streams:
            self._streams.pop((output.ext, stream_id), None)
        request = output.request
        if request is None:
            return
        if output.held and output.last_stream is not None:
            # the partner never came: the half goes out as U+FFFD, as in the text
            output.pending.append(
                (output.last_stream, 0, StreamType.STREAM_DATA_LAST, repair(output.held))
            )
            output.held = ""
        self._flush(output)
        self._ended[(output.ext, output.output_id)] = (request, output.seq)
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        full = output.text() if text is None else text
        if self.tracker.log is not None:
            self.tracker.log.tokens(request, len(output.streams))
        if output.cancelled:
            # the requester already had SERVER_STREAM_END 'cancelled'
            await self.responder.keep_cancelled(request, output.ext, full, output.output_id)
            return

        async def stream_end() -> None:
            if not output.streams:
                return
            self._end(
                request,
                {
                    "requestId": request.request_id,
                    "outputId": output.output_id,
                    "streamId": output.last_stream,
                    "source": output.ext,
                    "identity": output.ext,
                    "roomName": request.room,
                    "status": status.value,
                    "data": full,
                    "continued": output.continued,
                },
            )

        await self.responder.respond(
            request, output.ext, full, output.output_id, status, reason, before_news=stream_end
        )

    async def message(
        self,
        ext: str,
        text: str,
        request_id: Any,
        output_id: str,
        status: RequestStatus = RequestStatus.COMPLETED,
    ) -> bool:
        """A complete non-stream answer (``stopped``: what there was when the
        user stopped it); supersedes a partial stream of the same request.
        False when there is nothing to answer."""
        current = self.current.get(ext)
        request = self.tracker.get(request_id)
        if request is None or ext not in request.targets:
            request = current.request if current and current.request else self.tracker.head(ext)
        if request is None:
            log.warning("unsolicited message from %s: dropped", ext)
            return False
        ongoing = current if current is not None and current.request is request else None
        if request.status is RequestStatus.CANCELLED:
            if ongoing is not None:
                await self.finish(ongoing, status, text=text)
            else:
                await self.responder.keep_cancelled(request, ext, text, output_id)
            return True
        await self.responder.report_processing(request)
        limit = self.live.current.max_answer_bytes
        reason = None
        raw = text.encode("utf-8", "surrogatepass")
        if len(raw) > limit:
            text = repair(raw[:limit].decode("utf-8", "ignore"))
            status = RequestStatus.FAILED
            reason = f"The answer was longer than {limit} bytes (maxAnswerBytes) and was cut off."
        if text:
            answer: NonStream = {
                "type": 0,
                "data": text,
                "source": "server",
                "requestId": request.request_id,
                "outputId": output_id,
                "identity": ext,
                "roomName": request.room,
            }
            self.responder.to_room(request.room, Ev.MESSAGE, answer)
        if ongoing is not None:
            await self.finish(ongoing, status, reason, text=text)
        else:
            await self.responder.respond(request, ext, text, output_id, status, reason)
        return True

    async def cancel(self, request: LlmRequest) -> list[str]:
        """End an open ``request`` as cancelled for every target still on it
        and return those targets. Their room hears the end of the stream at
        once; what they still send is kept (``Output.cancelled``)."""
        pending = [e for e, state in request.targets.items() if state is TargetState.PENDING]
        for ext in pending:
            current = self.current.get(ext)
            output = current if current is not None and current.request is request else None
            if output is not None:
                self._flush(output)  # what was accepted goes out before the end
            self.tracker.target_done(request, ext, TargetState.CANCELLED)
            self._end(
                request,
                {
                    "requestId": request.request_id,
                    "outputId": output.output_id if output else None,
                    "streamId": output.last_stream if output else None,
                    "source": ext,
                    "identity": ext,
                    "roomName": request.room,
                    "status": RequestStatus.CANCELLED.value,
                    "data": output.text() if output else "",
                    "continued": output.continued if output else False,
                },
            )
        # whatever the other targets did, the request ends cancelled
        request.status = RequestStatus.CANCELLED
        if request.finished is None:
            request.finished = time.monotonic()
        await self.responder.cancelled(request, pending)
        return pending

    async def stop(self, ext: str) -> None:
        current = self.current.get(ext)
        if current is not None:
            await self.finish(current, RequestStatus.COMPLETED)

    async def fail(self, ext: str, request: LlmRequest | None, reason: str) -> None:
        """``ext`` will not (fully) answer ``request``: keep what it said,
        marked incomplete, and tell the requester."""
        current = self.current.get(ext)
        if current is not None and (request is None or current.request is request):
            await self.finish(current, RequestStatus.FAILED, reason)
            return
        if request is not None and request.targets.get(ext) is TargetState.PENDING:
            await self.responder.settle(request, ext, RequestStatus.FAILED, reason)

    async def report_error(self, ext: str, request: LlmRequest, reason: str, detail: Any) -> bool:
        """``ext`` reports it failed ``request`` (``ERROR``). False when its
        part was already settled (timed out, failed chunk, answered): the
        requester heard its outcome once and must not hear it again."""
        if request.targets.get(ext) is not TargetState.PENDING:
            return False
        if request.open:  # a cancelled or finished request has had its end
            await self.responder.notify_error(request, reason, detail)
        await self.fail(ext, request, reason)
        return True

    async def extension_gone(self, ext: str) -> None:
        reason = f"Extension {ext} disconnected."
        current = self.current.get(ext)
        for request in [current.request if current else None, *self.tracker.queued(ext)]:
            if request is not None:
                request.failure = ErrorCode.UNAVAILABLE
        await self.fail(ext, None, reason)
        for request in self.tracker.queued(ext):
            await self.fail(ext, request, reason)

    async def instance_gone(self, ext: str, sid: str) -> None:
        """One tab of ``ext`` closed while others stay: what was sent to that
        tab fails as if the extension had gone (it will not be answered)."""
        reason = f"Extension {ext} disconnected."
        for request in self.tracker.queued(ext):
            if request.sockets.get(ext) == sid:
                await self.fail(ext, request, reason)

    async def sweep(self) -> None:
        """Idle outputs end; requests without progress past the timeout fail."""
        now = time.monotonic()
        settings = self.live.current
        idle = settings.stream_finalize_idle_ms / 1000
        for output in list(self.current.values()):
            if now - output.last_activity >= idle:
                await self.finish(output, RequestStatus.COMPLETED)
        timeout = settings.request_timeout / 1000
        for ext in self.tracker.extensions():
            since = self.tracker.head_since(ext)
            head = self.tracker.head(ext)
            if since is not None and head is not None and now - since >= timeout:
                head.failure = ErrorCode.TIMEOUT
                await self.fail(ext, head, f"Extension {ext} did not answer in time.")
        self.tracker.evict(settings.completed_request_ttl / 1000)
        self.log.expire()
        for rid in [r for r in self.followers if self.tracker.get_open(r) is None]:
            del self.followers[rid]

    def sweep_interval(self) -> float:
        settings = self.live.current
        shortest = min(settings.stream_finalize_idle_ms, settings.request_timeout) / 1000
        return max(0.02, min(0.5, shortest / 4))
