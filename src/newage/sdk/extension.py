"""The SDK's extension: a program that answers requests as a SillyTavern
instance would, on the same wire (docs/protocol.md, "What our extension
sends").

It logs in like our SillyTavern extension (``getKey`` on ``/sillytavern``,
with the password when the trust entry has one) unless it is given a key,
then keeps one ``/llm`` socket. A refused key (``Invalid key.``, e.g. after
a restart that rotated it) makes it log in afresh before the next attempt.
Requests are answered ``concurrency`` at a time (one, like SillyTavern) in
arrival order, each by the handler: an async iterator of text is streamed,
an awaitable's string is sent whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from newage.protocol.names import GET_KEY, Ev, Namespace, StreamType
from newage.sdk._conn import Connection
from newage.sdk.errors import NewAgeError
from newage.sdk.request import Request

log = logging.getLogger("newage.sdk")
LLM = Namespace.LLM
SEEN_MAX = 1000  # request ids remembered so that none is answered twice

Handler = Callable[[Request], AsyncIterable[str] | Awaitable[str]]


@dataclass
class _Job:
    request: Request
    task: asyncio.Task[None] | None = None
    cancelled: bool = False


class _Writer:
    """Stream frames of one answer: each piece of text is one stream, every
    frame with the ``requestId``, the last stream with ``final: true``."""

    def __init__(self, conn: Connection, request_id: str) -> None:
        self.conn = conn
        self.request_id = request_id
        self.output_id = str(uuid.uuid4())
        self.frames = 0

    async def frame(self, data: str, end_status: str | None = None) -> None:
        base = {"streamId": str(uuid.uuid4()), "outputId": self.output_id}
        base["requestId"] = self.request_id
        emit = self.conn.emit
        await emit(
            LLM, Ev.CLIENT_STREAM_START, {"type": StreamType.STREAM_START, "numStreams": 1, **base}
        )
        if data:
            first = self.frames == 0
            event = Ev.CLIENT_STREAM_DATA_FIRST if first else Ev.CLIENT_STREAM_DATA_MIDDLE
            kind = StreamType.STREAM_DATA_FIRST if first else StreamType.STREAM_DATA_MIDDLE
            await emit(LLM, event, {"type": kind, "chunkIndex": 0, "data": data, **base})
        end: dict[str, Any] = {"type": StreamType.STREAM_END, **base}
        if end_status is not None:
            end.update(final=True, status=end_status)
        await emit(LLM, Ev.CLIENT_STREAM_END, end)
        self.frames += 1


class Extension:
    def __init__(
        self,
        url: str,
        client_id: str,
        handler: Handler,
        *,
        password: str | None = None,
        key: str | None = None,
        concurrency: int = 1,
        desc: str | None = None,
        timeout: float = 10,
        socketio_path: str = "socket.io",
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.handler = handler
        self.password = password
        self.key = key
        self._login_for_key = key is None
        self._concurrency = max(1, concurrency)
        self._timeout = timeout
        self._path = socketio_path
        self._auth_base: dict[str, Any] = {"clientId": client_id, "clientType": "SillyTavern"}
        if desc is not None:
            self._auth_base["desc"] = desc
        self._conn = Connection(
            url, (LLM,), self._auth, timeout=timeout, socketio_path=socketio_path
        )
        self._conn.on(LLM, Ev.LLM_REQUEST, self._on_request)
        self._conn.on(LLM, Ev.CANCEL_REQUEST, self._on_cancel)
        # the server's liveness heartbeat: answered by this program's own loop,
        # so a stuck program stops getting requests
        self._conn.on(LLM, Ev.PING_EXTENSION, lambda *_: {"status": "ok"})
        self._conn.on_refused = self._on_refused
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._jobs: dict[str, _Job] = {}
        self._seen: dict[str, None] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._relogin: asyncio.Task[None] | None = None
        self.served = 0

    @property
    def connection(self) -> Connection:
        return self._conn

    def _auth(self) -> dict[str, Any]:
        return {**self._auth_base, "key": self.key}

    # ------------------------------------------------------------ lifecycle
    async def login(self) -> str:
        """A key from ``getKey`` (with the password when one is set)."""
        auth = {**self._auth_base, "key": GET_KEY}
        request: dict[str, Any] = {"clientId": self.client_id}
        if self.password is not None:
            auth["password"] = request["password"] = self.password
        conn = Connection(
            self.url,
            (Namespace.SILLYTAVERN,),
            lambda: auth,
            reconnection=False,
            timeout=self._timeout,
            socketio_path=self._path,
        )
        await conn.connect()
        try:
            ack = await conn.call(Namespace.SILLYTAVERN, Ev.IDENTIFY_SILLYTAVERN, request)
        finally:
            await conn.close()
        key = ack.get("key")
        if not isinstance(key, str) or not key:
            raise NewAgeError("The server issued no key.", "internal", ack)
        self.key = key
        return key

    async def start(self) -> Extension:
        if self.key is None:
            await self.login()
        await self._conn.connect()
        self._workers = [
            asyncio.get_running_loop().create_task(self._work()) for _ in range(self._concurrency)
        ]
        return self

    async def close(self) -> None:
        tasks = [*self._workers, *(j.task for j in self._jobs.values() if j.task)]
        if self._relogin is not None:
            tasks.append(self._relogin)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers = []
        await self._conn.close()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def __aenter__(self) -> Extension:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _on_refused(self, data: Any) -> None:
        message = data.get("message") if isinstance(data, dict) else data
        busy = self._relogin is not None and not self._relogin.done()
        if message == "Invalid key." and self._login_for_key and self._workers and not busy:
            # the next reconnection attempt asks _auth() again, with the new key
            self._relogin = asyncio.get_running_loop().create_task(self._renew_key())

    async def _renew_key(self) -> None:
        try:
            await self.login()
        except NewAgeError as exc:
            log.warning("logging in again failed: %s", exc)

    # ------------------------------------------------------------ requests
    def _on_request(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("requestId"), str):
            return
        request = Request.parse(data)
        if request.request_id in self._seen:
            return
        self._seen[request.request_id] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.pop(next(iter(self._seen)))
        job = _Job(request)
        self._jobs[request.request_id] = job
        self._queue.put_nowait(job)

    def _on_cancel(self, data: Any) -> None:
        """Drop a request that waits; cancel the task producing one that runs."""
        job = self._jobs.get(str(data.get("requestId"))) if isinstance(data, dict) else None
        if job is None:
            return
        job.cancelled = True
        if job.task is not None:
            job.task.cancel()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                if not job.cancelled:
                    job.task = asyncio.get_running_loop().create_task(self._answer(job))
                    await asyncio.gather(job.task, return_exceptions=True)
            finally:
                self._jobs.pop(job.request.request_id, None)

    async def _answer(self, job: _Job) -> None:
        request_id = job.request.request_id
        writer = _Writer(self._conn, request_id)
        result: Any = None
        try:
            result = self.handler(job.request)
            if inspect.isawaitable(result):
                text = await result
                await self._whole(writer, str(text))
            else:
                async for piece in result:
                    if piece:
                        await writer.frame(str(piece))
                if writer.frames:
                    await writer.frame("", "completed")
                else:
                    await self._whole(writer, "")
            self.served += 1
        except asyncio.CancelledError:
            if not job.cancelled:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            # the server ended the answer already; a final frame ends our output
            # at once instead of after the server's idle window
            if writer.frames:
                with contextlib.suppress(NewAgeError):
                    await writer.frame("", "stopped")
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            log.warning("answering %s failed: %s", request_id, message)
            with contextlib.suppress(NewAgeError):
                await self._conn.emit(
                    LLM,
                    Ev.ERROR,
                    {"message": message, "error": {"message": message}, "requestId": request_id},
                )
        finally:
            aclose = getattr(result, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _whole(self, writer: _Writer, text: str) -> None:
        payload = {"type": StreamType.NON_STREAM, "data": text, "requestId": writer.request_id}
        payload["outputId"] = writer.output_id
        await self._conn.emit(LLM, Ev.MESSAGE, payload)
