"""Relay across two cluster nodes versus within one (docs/cluster.md).

Three layouts of one extension streaming to one requester:

- ``single``: one process without Redis (the reference);
- ``local``: two nodes of a cluster, extension and requester on the same node;
- ``cross``: two nodes, extension on one, requester on the other.

Per layout: the server CPU (every server process, from /proc) per token
relayed, and the latency from the extension sending a token to the requester
receiving it (p50, p99). The extension paces its tokens (``--interval-ms``)
so the latency is the path's, not a queue's; both clients run in this
process (one clock). Python clients (python-socketio) are slower than the
Node load generator of ``bench.run``: compare the layouts with each other.

The layouts take turns (one run of each per round), and each round's
cross/local ratio is kept: on a shared machine the load of other processes
drifts, and a ratio of two runs seconds apart drifts much less than the runs.
``other_cpu_util`` is the CPU (in cores) the rest of the machine used meanwhile
(neither the servers nor this process; Redis is in it).

    .venv/bin/python -m bench.cluster --tokens 2000 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis
from tests.helpers.client import Peer, auth
from tests.helpers.fake_extension import FakeExtension
from tests.helpers.proc import ServerProcess
from tests.helpers.server import write_settings

from bench.common import CLK_TCK, cli, cpu_seconds, medians, save
from bench.run import profiled

REDIS_URL = "redis://127.0.0.1:6379/0"


def prepare(coalesce_ms: int) -> tuple[Path, dict[str, str]]:
    data = Path(tempfile.mkdtemp(prefix="newage-bench-cluster-"))
    cli(data, "init")
    write_settings(data, {"streamCoalesceMs": coalesce_ms, "streamFinalizeIdleMs": 60000})
    keys = {}
    for client_id, kind in (("SillyTavern-b", "SillyTavern"), ("web", "client")):
        cli(data, "trust", "add", client_id, "--type", kind)
        keys[client_id] = cli(data, "keys", "create", client_id)
    return data, keys


async def delivered_entries(prefix: str) -> tuple[int, int]:
    """Entries in the delivery streams under ``prefix``, and the items in them."""
    redis = Redis.from_url(REDIS_URL)
    entries = items = 0
    try:
        async for key in redis.scan_iter(match=f"{prefix}:dlv:*", _type="stream"):
            found: Any = await redis.xrange(key)
            for _id, fields in found:
                entries += 1
                items += len(orjson.loads(fields[b"m"]))
    finally:
        await redis.aclose()
    return entries, items


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores), /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK  # idle and iowait left out


async def one_run(
    data: Path,
    keys: dict[str, str],
    layout: str,
    tokens: int,
    interval: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    prefix = f"newage-bench-{uuid.uuid4().hex[:8]}"
    env = (
        {} if layout == "single" else {"NEWAGE_REDIS_URL": REDIS_URL, "NEWAGE_REDIS_PREFIX": prefix}
    )
    count = 1 if layout == "single" else 2
    nodes = [ServerProcess(data, env=env, stdout=subprocess.DEVNULL) for _ in range(count)]
    for node in nodes:
        await asyncio.to_thread(node.start)
    ext_peer = Peer(nodes[0].url)
    web = Peer(nodes[-1].url if layout == "cross" else nodes[0].url)
    try:
        await ext_peer.open(
            "/llm", auth("SillyTavern-b", keys["SillyTavern-b"], clientType="SillyTavern")
        )
        await web.open("/llm", auth("web", keys["web"], clientType="web-app"))
        await asyncio.sleep(1.0)  # the directories settle
        ext = FakeExtension(ext_peer, "SillyTavern-b")
        rid = f"r-{uuid.uuid4().hex[:6]}"
        ack = await web.call("/llm", "LLM_REQUEST", {"requestId": rid, "message": "go"})
        assert ack["status"] == "ok", ack
        await ext.next_request(timeout=10)
        received: list[int] = []  # ns at which each token's last part arrived
        text = ""
        done = asyncio.Event()

        def chunk(payload: Any) -> None:
            nonlocal text
            if payload.get("requestId") != rid:
                return
            text += payload["data"]
            while ";" in text:
                _, text = text.split(";", 1)
                received.append(time.perf_counter_ns())
            if len(received) >= tokens:
                done.set()

        web.sio.on("SERVER_STREAM_DATA", chunk, namespace="/llm")
        pids = [n.proc.pid for n in nodes if n.proc is not None]
        each0 = [cpu_seconds(p) for p in pids]
        self0, busy0, t0 = cpu_seconds(os.getpid()), machine_busy(), time.monotonic()
        sent: list[int] = []
        output_id = str(uuid.uuid4())
        with contextlib.ExitStack() as spies:
            for n, pid in enumerate(pids):
                out = profile / f"{layout}-node{n}.txt" if profile else None
                spies.enter_context(profiled(pid, out))
            for i in range(tokens):
                sent.append(time.perf_counter_ns())
                await ext.token(output_id, f"t{i:06d}xx;", first=i == 0, final=i == tokens - 1)
                await asyncio.sleep(interval)
            with contextlib.suppress(TimeoutError):  # what is missing then counts as lost
                await asyncio.wait_for(done.wait(), 30)
            each = [cpu_seconds(p) - c for p, c in zip(pids, each0, strict=True)]
            cpu = sum(each)
            own = cpu_seconds(os.getpid()) - self0
            window = time.monotonic() - t0
            other = (machine_busy() - busy0 - cpu - own) / window
        latencies = sorted((r - s) / 1e6 for s, r in zip(sent, received, strict=False))
        entries, items = await delivered_entries(prefix) if layout != "single" else (0, 0)
        return {
            # what crossed nodes: stream entries (XADDs) and the events in them
            "streamEntries": entries,
            "streamItems": items,
            "tokens": tokens,
            "lost": tokens - len(received),
            "cpuMsPerToken": round(cpu * 1000 / tokens, 4),
            # node 0 has the extension; in ``cross`` node 1 has the requester
            "cpuMsPerTokenByNode": {
                f"node{n}": round(c * 1000 / tokens, 4) for n, c in enumerate(each)
            },
            "serverCpuUtil": round(cpu / window, 3),
            "other_cpu_util": round(other, 2),
            "latencyMsP50": round(statistics.median(latencies), 3) if latencies else None,
            "latencyMsP99": round(latencies[int(len(latencies) * 0.99) - 1], 3)
            if latencies
            else None,
        }
    finally:
        await web.close()
        await ext_peer.close()
        for node in nodes:
            await asyncio.to_thread(node.stop, 5)
        redis = Redis.from_url(REDIS_URL)
        leftover = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if leftover:
            await redis.delete(*leftover)
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5, help="rounds")
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("--coalesce-ms", type=int, default=10, help="streamCoalesceMs")
    parser.add_argument("--layouts", default="single,local,cross", help="comma-separated")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw stacks here")
    args = parser.parse_args()
    layouts = [name for name in ("single", "local", "cross") if name in args.layouts.split(",")]
    data, keys = prepare(args.coalesce_ms)
    try:
        result: dict[str, Any] = {
            "tokens": args.tokens,
            "intervalMs": args.interval_ms,
            "coalesceMs": args.coalesce_ms,
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in layouts}
        ratios: list[float] = []
        for _ in range(args.runs):
            for layout in layouts:
                run = await one_run(
                    data, keys, layout, args.tokens, args.interval_ms / 1000, args.profile
                )
                runs[layout].append(run)
                print(layout, run, flush=True)
            if "local" in runs and "cross" in runs:
                cross, local = runs["cross"][-1], runs["local"][-1]
                ratios.append(round(cross["cpuMsPerToken"] / local["cpuMsPerToken"], 3))
        for layout in layouts:
            result[layout] = medians(runs[layout])
            result[layout]["cpuMsPerTokenRuns"] = [r["cpuMsPerToken"] for r in runs[layout]]
            print(layout, result[layout], flush=True)
        if ratios:
            # the median of each round's own ratio, and the ratio of the medians
            result["crossOverLocalCpuRounds"] = ratios
            result["crossOverLocalCpu"] = statistics.median(ratios)
            of_medians = result["cross"]["cpuMsPerToken"] / result["local"]["cpuMsPerToken"]
            result["crossOverLocalCpuOfMedians"] = round(of_medians, 3)
            print("cross/local CPU per token, per round:", ratios, flush=True)
            print("median:", result["crossOverLocalCpu"], flush=True)
        if "single" in result and "cross" in result:
            result["crossOverSingleCpu"] = round(
                result["cross"]["cpuMsPerToken"] / result["single"]["cpuMsPerToken"], 3
            )
        kwargs = {"directory": args.results} if args.results else {}
        print("saved", save("cluster", result, **kwargs))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
