"""What the stream log costs: server CPU per token with it on and off, and
the memory one kept stream takes.

    python -m bench.streamlog [--requests N] [--tokens N] [--rate TOKENS_PER_S]
                              [--rounds N] [--quick] [--results DIR]

Two ``newage serve`` processes run side by side, identical but for
``streamLogMaxBytes`` (default: the log on; 0: off), each with its own
extension process (bench.openai's: the real wire protocol, per token START,
five data sub-chunks, END) and its own Socket.IO caller. ``streamCoalesceMs``
is 0, so every chunk is its own relayed event and its own log entry (the
log's worst case). The rounds alternate between the two servers, so both
see the same background load on a shared machine; per server the CPU per
token is its user+system time over its rounds / tokens relayed.

Memory: in this process, ``tracemalloc`` around a :class:`MemoryStreamLog`
that keeps ``--streams`` outputs of ``--tokens`` one-character chunks, each
chunk the very payload dictionary the server relays (the log holds a
reference to it, so in the server the payload is not a copy: the figure
here counts the payload too, an upper bound).

Results: bench/results/streamlog.json and a table on stdout; about 30 s with
the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
import tracemalloc
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import cli, cpu_seconds, newage_server, save
from bench.openai import EXT, SIO_CLIENT, SocketCaller, run_extension
from bench.run import BASE_SETTINGS
from newage.domain.llm.streamlog import MemoryStreamLog

MODES = {"on": {}, "off": {"streamLogMaxBytes": 0}}


def payload(request_id: str, output_id: str, seq: int) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "outputId": output_id,
        "streamId": f"{output_id}-{seq}",
        "chunkIndex": 0,
        "type": 5,
        "data": "t",
        "source": EXT,
        "identity": EXT,
        "roomName": "bench",
        "seq": seq,
        "chunks": 1,
    }


def memory_per_stream(streams: int, tokens: int) -> dict[str, float]:
    tracemalloc.start()
    log = MemoryStreamLog(4_000_000, 1 << 40, 600)
    before = tracemalloc.get_traced_memory()[0]
    for s in range(streams):
        request_id, output_id = f"chatcmpl-{s:032d}", f"{s:036d}"
        for seq in range(1, tokens + 1):
            log.append(request_id, output_id, "bench", payload(request_id, output_id, seq))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {
        "streams": streams,
        "chunksPerStream": tokens,
        "bytesPerStream": round(used / streams),
        "bytesPerChunk": round(used / streams / tokens, 1),
    }


async def measure(
    servers: dict[str, tuple[str, int]], keys: dict[str, dict[str, str]], args: argparse.Namespace
) -> dict[str, Any]:
    callers: dict[str, SocketCaller] = {}
    procs = []
    for mode, (url, _) in servers.items():
        ready = multiprocessing.Event()
        ext = multiprocessing.Process(
            target=run_extension,
            args=(url, keys[mode][EXT], args.tokens, args.rate, ready),
            daemon=True,
        )
        ext.start()
        procs.append(ext)
        if not await asyncio.to_thread(ready.wait, 30):
            raise RuntimeError("the extension did not connect")
        callers[mode] = SocketCaller(url, keys[mode][SIO_CLIENT])
        await callers[mode].connect()
        await callers[mode].ask()  # warm-up
    cpu = dict.fromkeys(servers, 0.0)
    for _ in range(args.rounds):
        for mode, (_, pid) in servers.items():
            cpu0 = cpu_seconds(pid)
            for _ in range(args.requests):
                await callers[mode].ask()
            cpu[mode] += cpu_seconds(pid) - cpu0
    for caller in callers.values():
        await caller.sio.disconnect()
    for proc in procs:
        proc.terminate()
        proc.join(10)
    tokens = args.rounds * args.requests * args.tokens
    per_token = {mode: round(cpu[mode] / tokens * 1e6, 2) for mode in servers}
    return {
        "tokens": tokens,
        "serverCpuUsPerToken": per_token,
        "overheadPercent": round((per_token["on"] / per_token["off"] - 1) * 100, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streamlog")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--rate", type=float, default=4000, help="tokens/s; 0: flat out")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--streams", type=int, default=200, help="memory: kept streams")
    parser.add_argument("--quick", action="store_true", help="3 requests, 2 rounds")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 3, 2

    keys: dict[str, dict[str, str]] = {mode: {} for mode in MODES}

    def preparer(mode: str) -> Any:
        def prepare(data: Path) -> None:
            for client_id, kind in ((EXT, "SillyTavern"), (SIO_CLIENT, "client")):
                cli(data, "trust", "add", client_id, "--type", kind)
                keys[mode][client_id] = cli(data, "keys", "create", client_id)

        return prepare

    settings = {
        mode: {**BASE_SETTINGS, "streamCoalesceMs": 0, **extra} for mode, extra in MODES.items()
    }
    started = time.perf_counter()
    with ExitStack() as stack:
        servers = {}
        for mode in MODES:
            url, pid, _ = stack.enter_context(newage_server(settings[mode], prepare=preparer(mode)))
            servers[mode] = (url, pid)
        cpu = asyncio.run(measure(servers, keys, args))
    memory = memory_per_stream(args.streams, args.tokens)
    config = {k: getattr(args, k) for k in ("requests", "tokens", "rate", "rounds", "streams")}
    result = {"cpu": cpu, "memory": memory, "seconds": round(time.perf_counter() - started, 1)}
    path = save(
        "streamlog",
        {"config": config, "settings": settings, "results": result},
        *([args.results] if args.results else []),
    )
    print(f"{'stream log':<12} {'CPU us/token':>13}")
    for mode, value in cpu["serverCpuUsPerToken"].items():
        print(f"{mode:<12} {value:>13}")
    print(f"overhead: {cpu['overheadPercent']} %")
    print(
        f"memory: {memory['bytesPerStream']} bytes per kept stream of "
        f"{memory['chunksPerStream']} chunks ({memory['bytesPerChunk']} per chunk)"
    )
    print(f"saved {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
