"""The OpenAI-compatible API under ``/v1`` (docs/openai.md).

A request's status line is only sent once its fate is known well enough:
routing and auth errors come back as real statuses, and a stream's ``200``
waits for the extension's first word (or ``apiKeepAliveMs``, after which
keep-alive comments need the stream open). A client that goes away cancels
its request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from newage.domain.llm.api import Piece, Submission
from newage.domain.llm.responses import Ended
from newage.errors import ErrorCode, NewAgeError, bad_request, not_found
from newage.http.openai_wire import (
    DONE,
    PING,
    ChatCompletionIn,
    ChunkWriter,
    completion,
    error_body,
    error_status,
    usage,
)

if TYPE_CHECKING:
    from newage.services import Services

T = TypeVar("T")
ROOM_HEADER = "x-newage-room"
RESUMABLE_HEADER = "x-newage-resumable"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def error_response(exc: NewAgeError) -> Response:
    status, headers = error_status(exc)
    return JSONResponse(error_body(exc), status_code=status, headers=headers)


async def until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_gone(receive: Receive, work: Awaitable[T]) -> tuple[bool, T | None]:
    """Run ``work`` until it ends or the client disconnects: (gone, result)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return True, None
    return False, task.result()


class EventStream(Response):
    """``text/event-stream`` whose producer stops when the client leaves."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], gone: Callable[[], Awaitable[None]]) -> None:
        # like StreamingResponse: no body, so no Content-Length
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)
        self.frames = frames
        self.gone = gone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def pump() -> None:
            async for frame in self.frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            gone, _ = await unless_gone(receive, pump())
        except OSError:
            gone = True
        if gone:
            await self.gone()


def build_openai_app(services: Services) -> ASGIApp:
    api = services.llm_api

    async def principal_of(request: Request) -> Any:
        peer = request.client.host if request.client else ""
        try:
            return await api.authenticate(request.headers.get("authorization"), peer)
        except NewAgeError as exc:
            services.audit.refused(exc, "an API caller", peer, "/v1")
            raise

    async def models(request: Request) -> Response:
        try:
            principal = await principal_of(request)
        except NewAgeError as exc:
            return error_response(exc)
        created = int(services.info.started_at)
        data = [{"id": "auto", "object": "model", "created": created, "owned_by": "newage"}]
        names = api.models(principal)
        elsewhere: dict[str, dict[str, Any]] = {}
        if any(not services.router.here(name) for name in names):  # a cluster's other nodes
            for item in await services.liveness.all_states():
                elsewhere.setdefault(item["identity"], item)
        for name in names:
            state = services.liveness.state(name)
            if not services.router.here(name):
                state = elsewhere.get(name, {**state, "available": True})
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "newage",
                    "state": state["state"],
                    "available": state["available"],
                    "queue_length": state["queueLength"],
                    "in_flight": state["inFlight"],
                    "last_answer_at": state["lastAnswerAt"],
                }
            )
        return JSONResponse({"object": "list", "data": data})

    async def read_body(request: Request) -> bytes:
        limit = services.live.current.max_payload_bytes
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise NewAgeError(
                    ErrorCode.TOO_LARGE, f"The body exceeds {limit} bytes (maxPayloadBytes)."
                )
        return bytes(body)

    async def completions(request: Request) -> Response:
        try:
            principal = await principal_of(request)
            body = ChatCompletionIn.parse(await read_body(request))
            room = body.user or request.headers.get(ROOM_HEADER) or None
            with services.audit.acting(principal.identity):  # a room it opens is audited
                sub = await api.submit(principal, room, body.model, body.recorded())
        except NewAgeError as exc:
            return error_response(exc)
        receive = request.receive
        # a resumable stream survives its caller: the answer goes on into
        # the stream log and history, for GET .../stream
        resumable = request.headers.get(RESUMABLE_HEADER, "").lower() in ("1", "true")
        if not body.stream:
            gone, ended = await unless_gone(receive, sub.feed.result())
            if gone or ended is None:
                await api.abandon(sub)
                return Response(status_code=499)
            api.finish(sub)
            if ended.failed:
                return error_response(ended.error())
            return JSONResponse(
                completion(
                    sub.request_id, sub.created, sub.model, ended.text, usage(body, ended.text)
                )
            )
        return await open_stream(sub, body, receive, resumable)

    async def open_stream(
        sub: Submission, body: ChatCompletionIn | None, receive: Receive, resumable: bool
    ) -> Response:
        async def gone() -> None:
            if resumable:
                api.finish(sub)
            else:
                await api.abandon(sub)

        keep_alive = services.live.current.api_keep_alive_ms / 1000
        left, first = await unless_gone(receive, sub.feed.next(keep_alive))
        if left:
            await gone()
            return Response(status_code=499)
        if isinstance(first, Ended) and first.failed:
            api.finish(sub)
            return error_response(first.error())
        return EventStream(sse_frames(sub, body, first), gone)

    async def resume(request: Request) -> Response:
        """``GET /v1/chat/completions/{id}/stream``: the stream again, after
        ``Last-Event-ID`` (docs/openai.md)."""
        try:
            principal = await principal_of(request)
            last = request.headers.get("last-event-id", "0").strip() or "0"
            if not last.isdigit() or len(last) > 9:
                raise bad_request("Last-Event-ID must be a number.")
            rid, after = request.path_params["id"], max(0, int(last) - 1)
            sub = await api.follow_anywhere(principal, rid, after)
        except NewAgeError as exc:
            return error_response(exc)
        return await open_stream(sub, None, request.receive, True)

    async def sse_frames(
        sub: Submission, body: ChatCompletionIn | None, first: Piece | Ended | None
    ) -> AsyncIterator[bytes]:
        with_usage = body is not None and body.include_usage
        writer = ChunkWriter(sub.request_id, sub.created, sub.model, with_usage)
        if not sub.resumed:
            yield writer.chunk({"role": "assistant", "content": ""})
        sent: list[str] = [sub.prefix]
        event = first
        while True:
            if event is None:
                yield PING
            elif isinstance(event, Piece):
                sent.append(event.text)
                yield writer.chunk({"content": event.text}, seq=event.seq or None)
            else:
                break
            event = await sub.feed.next(services.live.current.api_keep_alive_ms / 1000)
        assert isinstance(event, Ended)
        api.finish(sub)
        streamed = "".join(sent)
        if event.failed:
            yield writer.error(event.error())
            return
        # the final text may say more than the chunks did (a non-stream
        # answer superseding a stream, retried chunks)
        if event.text.startswith(streamed) and len(event.text) > len(streamed):
            yield writer.chunk({"content": event.text[len(streamed) :]})
        answer = event.text or streamed
        yield writer.chunk({}, "stop")
        if body is not None and body.include_usage:
            yield writer.usage(usage(body, answer))
        yield DONE

    async def unknown(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        response = error_response(
            not_found(
                f"Unknown endpoint {path} (this server has /v1/models and /v1/chat/completions)."
            )
        )
        await response(scope, receive, send)

    routes = [
        Route("/models", models, methods=["GET"]),
        Route("/chat/completions", completions, methods=["POST"]),
        Route("/chat/completions/{id}/stream", resume, methods=["GET"]),
    ]
    # The origin guard in front of the whole server has already refused
    # every origin that may not talk to us; what reaches here is allowed.
    return CORSMiddleware(
        Router(routes, default=unknown),
        allow_origin_regex=".*",
        allow_methods=["GET", "POST"],
        allow_headers=[
            "authorization",
            "content-type",
            ROOM_HEADER,
            RESUMABLE_HEADER,
            "last-event-id",
        ],
        max_age=600,
    )
