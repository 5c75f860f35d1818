"""The OpenAI-compatible API versus Socket.IO, same server, same run.

    python -m bench.openai [--requests N] [--tokens N] [--rate TOKENS_PER_S]
                           [--rounds N] [--quick] [--results DIR]

One ``newage serve`` process (the benchmark's base settings); one extension,
in its own process (python-socketio, the real wire protocol: per token
START, five data sub-chunks, END), answers every request with ``--tokens``
tokens at ``--rate`` tokens/s (0: as fast as it can, which saturates the
server and then measures its queueing more than the path). Two callers take
turns, ``--rounds`` times: a Socket.IO client (``LLM_REQUEST``; the answer as
``SERVER_STREAM_DATA`` up to ``SERVER_STREAM_END``) and an OpenAI client
(``POST /v1/chat/completions`` with ``stream: true``, read with httpx), each
making ``--requests`` requests one after the other. Per path: time to first
token (request sent -> first text received, median and p95; it includes the
``streamCoalesceMs`` window, 10 ms by default) and the server's CPU per token
(its user+system time over the phase / tokens relayed). The callers are
different clients, so neither hears the other's answers. Results:
bench/results/openai.json and a table on stdout; about 45 s with the
defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import socketio

from bench.common import cli, cpu_seconds, newage_server, save
from bench.run import BASE_SETTINGS

EXT, SIO_CLIENT, API_CLIENT = "SillyTavern-bench", "bench-sio", "bench-api"
LLM = "/llm"


class Extension:
    """Answers each forwarded request with ``tokens`` streamed tokens."""

    def __init__(self, url: str, key: str, tokens: int, rate: float) -> None:
        self.url = url
        self.key = key
        self.tokens = tokens
        self.rate = rate  # tokens per second; 0: as fast as it can
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("LLM_REQUEST", self._request, namespace=LLM)
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        auth = {"clientId": EXT, "key": self.key, "clientType": "SillyTavern"}
        await self.sio.connect(
            self.url, namespaces=[LLM], auth=auth, transports=["websocket"], wait_timeout=10
        )

    async def _request(self, _: Any) -> None:
        task = asyncio.create_task(self._stream())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stream(self) -> None:
        output_id = str(uuid.uuid4())
        start = time.perf_counter()
        for i in range(self.tokens):
            if self.rate:
                await asyncio.sleep(max(0.0, start + i / self.rate - time.perf_counter()))
            base = {"streamId": str(uuid.uuid4()), "outputId": output_id, "target": "server"}
            await self.sio.emit("CLIENT_STREAM_START", {"type": 1, "numStreams": 5, **base}, LLM)
            for index in range(5):
                if index == 4:
                    event, type_ = "CLIENT_STREAM_DATA_LAST", 6
                elif index == 0 and i == 0:
                    event, type_ = "CLIENT_STREAM_DATA_FIRST", 4
                else:
                    event, type_ = "CLIENT_STREAM_DATA_MIDDLE", 5
                chunk = {"type": type_, "chunkIndex": index, "data": "t" if index == 0 else ""}
                await self.sio.emit(event, {**chunk, **base}, LLM)
            end = {"type": 3, **base, "final": i == self.tokens - 1}
            await self.sio.emit("CLIENT_STREAM_END", end, LLM)


def run_extension(url: str, key: str, tokens: int, rate: float, ready: Any) -> None:
    """The extension in its own process, so that its sending does not
    delay the callers' receiving (they would share one event loop)."""

    async def serve() -> None:
        ext = Extension(url, key, tokens, rate)
        await ext.connect()
        ready.set()
        await ext.sio.wait()

    asyncio.run(serve())


class SocketCaller:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.sio = socketio.AsyncClient(reconnection=False)
        self.first: asyncio.Future[float] | None = None
        self.done: asyncio.Future[None] | None = None
        self.sio.on("SERVER_STREAM_DATA", self._data, namespace=LLM)
        self.sio.on("SERVER_STREAM_END", self._end, namespace=LLM)

    async def connect(self) -> None:
        auth = {"clientId": SIO_CLIENT, "key": self.key}
        await self.sio.connect(
            self.url, namespaces=[LLM], auth=auth, transports=["websocket"], wait_timeout=10
        )

    async def _data(self, payload: dict[str, Any]) -> None:
        if self.first is not None and not self.first.done() and payload.get("data"):
            self.first.set_result(time.perf_counter())

    async def _end(self, _: Any) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def ask(self) -> float:
        loop = asyncio.get_running_loop()
        self.first, self.done = loop.create_future(), loop.create_future()
        start = time.perf_counter()
        ack = await self.sio.call(
            "LLM_REQUEST",
            {"requestId": str(uuid.uuid4()), "message": "Hello", "target": EXT},
            namespace=LLM,
            timeout=30,
        )
        assert ack["status"] == "ok", ack
        first = await asyncio.wait_for(self.first, 60)
        await asyncio.wait_for(self.done, 60)
        return first - start


async def ask_api(http: httpx.AsyncClient, key: str) -> float:
    body = {"model": EXT, "stream": True, "messages": [{"role": "user", "content": "Hello"}]}
    start = time.perf_counter()
    first: float | None = None
    headers = {"Authorization": f"Bearer {API_CLIENT}:{key}"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
        assert resp.status_code == 200, resp.status_code
        async for line in resp.aiter_lines():
            if first is None and line.startswith("data: {") and '"content":"t' in line:
                first = time.perf_counter()
    assert first is not None
    return first - start


def summary(ttft: list[float], cpu: float, tokens: int, seconds: float) -> dict[str, Any]:
    ordered = sorted(ttft)
    return {
        "requests": len(ttft),
        "tokens": tokens,
        "ttftMedianMs": round(statistics.median(ordered) * 1000, 2),
        "ttftP95Ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "serverCpuUsPerToken": round(cpu / tokens * 1e6, 2),
        "tokensPerSecond": round(tokens / seconds),
    }


async def measure(url: str, pid: int, keys: dict[str, str], args: argparse.Namespace) -> Any:
    ready = multiprocessing.Event()
    ext = multiprocessing.Process(
        target=run_extension, args=(url, keys[EXT], args.tokens, args.rate, ready), daemon=True
    )
    ext.start()
    if not await asyncio.to_thread(ready.wait, 30):
        raise RuntimeError("the extension did not connect")
    caller = SocketCaller(url, keys[SIO_CLIENT])
    await caller.connect()
    totals: dict[str, dict[str, Any]] = {
        p: {"ttft": [], "cpu": 0.0, "seconds": 0.0} for p in ("socketio", "sse")
    }
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await caller.ask()  # warm-up of both paths
        await ask_api(http, keys[API_CLIENT])
        for _ in range(args.rounds):
            for path in ("socketio", "sse"):
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                for _ in range(args.requests):
                    if path == "socketio":
                        totals[path]["ttft"].append(await caller.ask())
                    else:
                        totals[path]["ttft"].append(await ask_api(http, keys[API_CLIENT]))
                totals[path]["seconds"] += time.perf_counter() - t0
                totals[path]["cpu"] += cpu_seconds(pid) - cpu0
    await caller.sio.disconnect()
    ext.terminate()
    ext.join(10)
    tokens = args.rounds * args.requests * args.tokens
    return {path: summary(t["ttft"], t["cpu"], tokens, t["seconds"]) for path, t in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openai")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000, help="tokens/s; 0: flat out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5 requests, 1 round")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 5, 1

    def prepare(data: Path) -> None:
        for client_id, kind in (
            (EXT, "SillyTavern"),
            (SIO_CLIENT, "client"),
            (API_CLIENT, "client"),
        ):
            cli(data, "trust", "add", client_id, "--type", kind)
            keys[client_id] = cli(data, "keys", "create", client_id)

    keys: dict[str, str] = {}
    with newage_server(BASE_SETTINGS, prepare=prepare) as (url, pid, _):
        result = asyncio.run(measure(url, pid, keys, args))
    config = {
        "requests": args.requests,
        "tokens": args.tokens,
        "rate": args.rate,
        "rounds": args.rounds,
    }
    path = save(
        "openai",
        {"config": config, "settings": BASE_SETTINGS, "results": result},
        *([args.results] if args.results else []),
    )
    print(
        f"{'path':<10} {'TTFT median ms':>15} {'TTFT p95 ms':>12} {'CPU us/token':>13} {'tok/s':>8}"
    )
    for name, r in result.items():
        print(
            f"{name:<10} {r['ttftMedianMs']:>15} {r['ttftP95Ms']:>12} "
            f"{r['serverCpuUsPerToken']:>13} {r['tokensPerSecond']:>8}"
        )
    print(f"saved {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
