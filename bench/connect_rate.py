"""Authenticated namespace connects per second with a valid key.

Clients speak Engine.IO/Socket.IO directly over websockets (no client
library overhead) from their own process. Two measurements:

* ``namespace``: CONNECT / DISCONNECT of a namespace over open connections
  (the authentication path itself: trust + key lookup, cached bcrypt);
* ``full``: a new websocket, its Engine.IO handshake and a namespace
  connect, every time (what a reconnecting client costs).

``python -m bench.run --only connect`` runs this against newage and the
reference relay (scenario 5); standalone, against newage only (default
settings), writing connect_rate.json into ``--results`` (a new temporary
directory unless given):

Usage: python -m bench.connect_rate [--seconds S] [--concurrency C] [--runs N]
                                    [--results DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

from bench.common import CLK_TCK, cli, cpu_seconds, medians, newage_server, save


async def namespace_loop(ws_url: str, auth: dict[str, Any], nsp: str, stop: float) -> int:
    count = 0
    async with websockets.connect(ws_url, compression=None) as ws:
        await ws.recv()  # Engine.IO open
        payload = f"40{nsp},{json.dumps(auth)}"
        while time.monotonic() < stop:
            await ws.send(payload)
            while True:
                msg = str(await ws.recv(decode=True))
                if msg == "2":
                    await ws.send("3")
                    continue
                break
            if not msg.startswith(f"40{nsp},"):
                raise RuntimeError(f"refused: {msg}")
            await ws.send(f"41{nsp},")
            count += 1
    return count


async def full_loop(ws_url: str, auth: dict[str, Any], nsp: str, stop: float) -> int:
    count = 0
    payload = f"40{nsp},{json.dumps(auth)}"
    while time.monotonic() < stop:
        async with websockets.connect(ws_url, compression=None) as ws:
            await ws.recv()
            await ws.send(payload)
            msg = str(await ws.recv(decode=True))
            if not msg.startswith(f"40{nsp},"):
                raise RuntimeError(f"refused: {msg}")
            count += 1
    return count


async def measure(
    kind: str, url: str, pid: int, auth: dict[str, Any], nsp: str, seconds: float, concurrency: int
) -> dict[str, float]:
    ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    loop = namespace_loop if kind == "namespace" else full_loop
    cpu0, busy0, self0 = cpu_seconds(pid), machine_busy(), own_cpu()
    start = time.monotonic()
    counts = await asyncio.gather(
        *(loop(ws_url, auth, nsp, start + seconds) for _ in range(concurrency))
    )
    elapsed = time.monotonic() - start
    server = cpu_seconds(pid) - cpu0
    # the machine is shared: what everyone but the server and these clients used
    other = machine_busy() - busy0 - server - (own_cpu() - self0)
    total = sum(counts)
    return {
        "connects_per_second": round(total / elapsed, 1),
        "server_cpu_ms_per_connect": round(server * 1000 / max(total, 1), 3),
        "other_cpu_util": round(other / elapsed, 2),
    }


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (/proc/stat, as the load generator reads it)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6, 7)) / CLK_TCK


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


KINDS = [(kind, nsp) for kind in ("namespace", "full") for nsp in ("/rooms", "/llm")]


def measure_all(
    url: str,
    pid: int,
    auth: dict[str, Any],
    seconds: float,
    concurrency: int,
    runs: int,
    kinds: tuple[str, ...] = ("namespace", "full"),
) -> list[dict[str, Any]]:
    """Every kind and namespace, ``runs`` times each (a kind's runs one after
    the other): per run, ``{kind_namespace: {connects_per_second, ...}}``.

    ``namespace`` cannot be measured against the Node socket.io server: it
    handles a DISCONNECT in a later tick and drops the whole connection when
    the next CONNECT to that namespace overtakes it ("invalid state").
    """
    per_run: list[dict[str, Any]] = [{} for _ in range(runs)]
    for kind, nsp in KINDS:
        if kind not in kinds:
            continue
        for run in per_run:
            measured = asyncio.run(measure(kind, url, pid, auth, nsp, seconds, concurrency))
            run[f"{kind}{nsp.replace('/', '_')}"] = measured
    return per_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--results", type=Path, help="where connect_rate.json goes (a temp dir)")
    args = parser.parse_args()
    with newage_server() as (url, pid, data):
        cli(data, "trust", "add", "bench")
        key = cli(data, "keys", "create", "bench")
        auth = {"clientId": "bench", "key": key}
        runs = measure_all(url, pid, auth, args.seconds, args.concurrency, args.runs)
    results: dict[str, Any] = {
        "params": {"seconds": args.seconds, "concurrency": args.concurrency, "runs": args.runs},
        "median": medians(runs),
        "runs": runs,
    }
    directory = args.results or Path(tempfile.mkdtemp(prefix="newage-connect-rate-"))
    path = save("connect_rate", results, directory)
    print(json.dumps(results["median"], indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
