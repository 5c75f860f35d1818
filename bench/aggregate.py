"""Aggregate relay throughput of one server process versus two on this machine.

Each process gets its own load generator (``bench/reference/loadgen.mjs``,
scenario ``relay``: one extension streams flat out, with a window of tokens in
flight, to one requester on the same process), all running at once. Reported
per layout: the tokens per second of every process added up, the server CPU
(cores) they used, and the load generators' own CPU (cores): on a machine
with as many cores as server processes, the load generators compete with the
servers, which is what keeps two processes from doubling one.

The processes share nothing (each its own SQLite data directory): the traffic
stays within a process, as the requests of a cluster do when their extension
and requester are on one node (``bench/cluster.py`` measures that layout
with Redis: it costs what a lone process costs).

    .venv/bin/python -m bench.aggregate --tokens 20000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import ensure_node_modules, newage_server, run_loadgen, save
from bench.run import BASE_SETTINGS, make_template


def one_layout(processes: int, tokens: int, template: Any) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(newage_server(BASE_SETTINGS, template=template[0]))
            for _ in range(processes)
        ]
        configs = [
            {
                "scenario": "relay",
                "kind": "ours",
                "url": url,
                "pid": pid,
                "runs": 1,
                "params": {"tokens": tokens, "window": 100, "timeoutS": 600},
                "creds": template[1],
            }
            for url, pid, _ in servers
        ]
        with ThreadPoolExecutor(len(configs)) as pool:
            results = [r[0] for r in pool.map(lambda c: run_loadgen(c, timeout=900), configs)]
    return {
        "processes": processes,
        "tokensPerS": round(sum(r["tokens_per_s"] for r in results)),
        "perProcessTokensPerS": [round(r["tokens_per_s"]) for r in results],
        "serverCpuCores": round(sum(r["server_cpu_util"] for r in results), 2),
        "loadgenCpuCores": round(sum(r["loadgen_cpu_util"] for r in results), 2),
        "serverCpuUsPerToken": round(
            sum(r["server_cpu_us_per_token"] for r in results) / len(results), 1
        ),
        "lost": sum(r["lost"] for r in results),
        "reordered": sum(r["reordered"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=20_000, help="per process")
    parser.add_argument("--max-processes", type=int, default=2)
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    ensure_node_modules()
    template = make_template()
    result: dict[str, Any] = {"cores": os.cpu_count(), "tokensPerProcess": args.tokens}
    for n in range(1, args.max_processes + 1):
        result[f"p{n}"] = one_layout(n, args.tokens, template)
        print(n, result[f"p{n}"], flush=True)
    one, last = result["p1"]["tokensPerS"], result[f"p{args.max_processes}"]["tokensPerS"]
    result["speedup"] = round(last / one, 2) if one else None
    print("speedup:", result["speedup"], flush=True)
    shutil.rmtree(template[0], ignore_errors=True)
    kwargs = {"directory": Path(args.results)} if args.results else {}
    print("saved", save("aggregate", result, **kwargs))


if __name__ == "__main__":
    main()
