"""Where an idle connection's memory goes: tracemalloc inside a real
``newage serve`` around connecting N idle clients like the ``idle``
scenario (one websocket carrying ``/`` and ``/llm``, each client its own
identity, so a session and a personal room each).

The server runs in its own process under ``-X tracemalloc``; SIGUSR1 makes
it write a snapshot (after the warm-up clients, and again once the N
clients are connected). The difference, grouped by the allocating line and
by a few frames of traceback, divided by N, is printed as a table (bytes
per client), along with the RSS difference per client (which includes what
tracemalloc itself costs: compare RSS figures only with ``--no-trace``).

Usage: python -m bench.idle_memory [--clients N] [--warm W] [--frames F]
                                   [--top K] [--no-trace] [--keep DIR] [--collect]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import websockets
from tests.helpers.proc import NEWAGE, ServerProcess
from tests.helpers.server import write_settings

from bench.common import cli

# The server process: tracemalloc on, SIGUSR1 writes a snapshot into the
# file named by NEWAGE_SNAPSHOT_DIR/<n>.snap.
_BOOT = """
import os, signal, sys, tracemalloc
directory = os.environ["NEWAGE_SNAPSHOT_DIR"]
count = [0]
def dump(*_):
    if os.environ.get("NEWAGE_SNAPSHOT_GC"):
        import gc
        gc.collect()
    count[0] += 1
    tracemalloc.take_snapshot().dump(os.path.join(directory, f"{count[0]}.snap"))
    open(os.path.join(directory, f"{count[0]}.done"), "w").close()
signal.signal(signal.SIGUSR1, dump)
from newage.cli import main
sys.argv = ["newage", *sys.argv[1:]]
main()
"""

SETTINGS = {
    "bcryptCost": 4,
    "authFailureLimit": 1_000_000,
    "maxConnections": 1_000_000,
    "maxConnectionsPerAddress": 1_000_000,
    "maxRoomsPerClient": 100_000,
    "heartbeatInterval": 0,
}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def open_client(ws_url: str, auth: dict[str, Any]) -> Any:
    ws = await websockets.connect(ws_url, compression=None, max_queue=None)
    await ws.recv()  # Engine.IO open
    for nsp in ("/", "/llm"):
        body = json.dumps(auth)
        await ws.send(f"40{body}" if nsp == "/" else f"40{nsp},{body}")
        while True:
            msg = str(await ws.recv(decode=True))
            if msg.startswith("40"):
                break
            if msg.startswith("44"):
                raise RuntimeError(f"refused: {msg}")
    return ws


async def keep_reading(ws: Any) -> None:
    """Answer pings and drop events (client lists, greetings) like a client."""
    try:
        async for msg in ws:
            if msg == "2":
                await ws.send("3")
    except websockets.ConnectionClosed:
        return


async def open_many(ws_url: str, auth: dict[str, Any], prefix: str, n: int) -> list[Any]:
    sem = asyncio.Semaphore(50)

    async def one(i: int) -> Any:
        async with sem:
            return await open_client(ws_url, {**auth, "identity": f"{prefix}-{i}"})

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def snapshot(pid: int, directory: Path, n: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    done = directory / f"{n}.done"
    deadline = time.monotonic() + 120
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("no snapshot")
        time.sleep(0.1)
    snap = tracemalloc.Snapshot.load(str(directory / f"{n}.snap"))
    # tracemalloc's own and the snapshot's frames are not the server's
    return snap.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])


def short(filename: str) -> str:
    for marker in ("site-packages/", "src/newage/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def measure(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="newage-idle-mem-"))
    snaps = Path(tempfile.mkdtemp(prefix="newage-idle-snap-"))
    try:
        cli(data, "init")
        write_settings(data, SETTINGS)
        cli(data, "trust", "add", "mem-client")
        key = cli(data, "keys", "create", "mem-client")
        env = {"NEWAGE_SNAPSHOT_DIR": str(snaps)}
        if args.collect:
            env["NEWAGE_SNAPSHOT_GC"] = "1"
        python = str(Path(NEWAGE).parent / "python")
        trace = [] if args.no_trace else ["-X", f"tracemalloc={args.frames}"]
        server = ServerProcess(
            data, env=env, stdout=subprocess.DEVNULL, program=[python, *trace, "-c", _BOOT]
        )
        await asyncio.to_thread(server.start)
        assert server.proc is not None
        proc, port = server.proc, server.port
        try:
            ws_url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
            auth = {"clientId": "mem-client", "key": key, "clientType": "web-app"}
            readers: list[asyncio.Task[None]] = []
            warm = await open_many(ws_url, auth, "warm", args.warm)
            readers += [asyncio.create_task(keep_reading(ws)) for ws in warm]
            await asyncio.sleep(1.5)
            rss0 = rss_kb(proc.pid)
            before = None if args.no_trace else snapshot(proc.pid, snaps, 1)
            conns = await open_many(ws_url, auth, "idle", args.clients)
            readers += [asyncio.create_task(keep_reading(ws)) for ws in conns]
            await asyncio.sleep(2)
            rss1 = rss_kb(proc.pid)
            after = None if args.no_trace else snapshot(proc.pid, snaps, 2)
            n = args.clients
            print(f"RSS per client: {(rss1 - rss0) / n:.1f} KB ({n} clients)")
            if before is not None and after is not None:
                report(before, after, n, args)
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    before.dump(str(args.keep / "before.snap"))
                    after.dump(str(args.keep / "after.snap"))
            for ws in warm + conns:
                await ws.close()
            for task in readers:
                task.cancel()
        finally:
            server.stop(timeout=10)
    finally:
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(snaps, ignore_errors=True)


def report(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int, args: argparse.Namespace
) -> None:
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"traced per client: {total / n:.0f} B\n")
    print("| bytes/client | whose (the innermost frame outside the standard library) |")
    print("|---:|---|")
    for who, size in sorted(owners(before, after).items(), key=lambda kv: -kv[1]):
        if abs(size) / n >= 20:
            print(f"| {size / n:.0f} | {who} |")
    print()
    print("| bytes/client | blocks/client | allocated at |")
    print("|---:|---:|---|")
    for stat in after.compare_to(before, "lineno")[: args.top]:
        frame = stat.traceback[0]
        where = f"{short(frame.filename)}:{frame.lineno}"
        print(f"| {stat.size_diff / n:.0f} | {stat.count_diff / n:.1f} | {where} |")
    if args.frames > 1:
        print("\n| bytes/client | blocks/client | allocated at (innermost first) |")
        print("|---:|---:|---|")
        for stat in after.compare_to(before, "traceback")[: args.top]:
            inner = list(stat.traceback)[::-1][:5]
            frames = " < ".join(f"{short(f.filename)}:{f.lineno}" for f in inner)
            print(f"| {stat.size_diff / n:.0f} | {stat.count_diff / n:.1f} | {frames} |")
        print("\n| bytes/client | innermost frame in our code (src/newage) |")
        print("|---:|---|")
        ours: dict[str, int] = {}
        for stat in after.compare_to(before, "traceback"):
            mine = next(
                (f for f in list(stat.traceback)[::-1] if "src/newage/" in f.filename), None
            )
            where = f"{short(mine.filename)}:{mine.lineno}" if mine else "(none: a library)"
            ours[where] = ours.get(where, 0) + stat.size_diff
        for where, size in sorted(ours.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"| {size / n:.0f} | {where} |")


def owner(frames: list[tracemalloc.Frame]) -> str:
    """The package (or our module) that asked for the memory: the innermost
    frame outside the standard library (asyncio's queues, locks and tasks
    count for whoever made them)."""
    for frame in frames:
        name = frame.filename
        if "site-packages/" in name:
            return name.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        if "src/newage/" in name:
            return "newage/" + name.split("src/newage/", 1)[1]
    return "(standard library)"


def owners(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    found: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        who = owner(list(stat.traceback)[::-1])
        found[who] = found.get(who, 0) + stat.size_diff
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-trace", action="store_true")
    parser.add_argument(
        "--collect", action="store_true", help="a full garbage collection before each snapshot"
    )
    parser.add_argument("--keep", type=Path, help="write the two snapshots into this directory")
    args = parser.parse_args()
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
