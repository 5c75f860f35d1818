"""A small OpenAI-compatible backend for the adapter's tests: Starlette +
uvicorn on an ephemeral loopback port, inside the test's event loop.

It answers ``You said: <last user message>`` word by word (streamed as
``chat.completion.chunk`` SSE, or whole) and keeps every request body, and
notes when a client closed a stream before its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


def reply_to(messages: list[dict[str, Any]]) -> str:
    last = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    return f"You said: {last}"


class MockOpenAI:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # between streamed words
        self.bodies: list[dict[str, Any]] = []
        self.aborted = asyncio.Event()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def chat(self, request: Request) -> Any:
        body = await request.json()
        self.bodies.append(body)
        text = reply_to(body["messages"])
        base = {"id": "chatcmpl-mock", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice]})

        async def events() -> AsyncIterator[str]:
            finished = False
            try:
                words = text.split(" ")
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    chunk = {**base, "object": "chat.completion.chunk", "choices": [delta]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                    if self.delay:
                        await asyncio.sleep(self.delay)
                end = {"index": 0, "delta": {}, "finish_reason": "stop"}
                yield f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', 'choices': [end]})}\n\n"
                yield "data: [DONE]\n\n"
                finished = True
            finally:
                if not finished:
                    self.aborted.set()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def start(self) -> MockOpenAI:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)


async def _serve(port: int) -> None:
    mock = MockOpenAI(delay=0.05)
    mock.port = port
    await mock.start()
    print(f"mock OpenAI backend on {mock.base_url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":  # the README's quick start: python -m tests.helpers.mock_openai
    import argparse

    parser = argparse.ArgumentParser(description="A mock OpenAI-compatible backend.")
    parser.add_argument("--port", type=int, default=5001)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args().port))
