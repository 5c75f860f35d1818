"""Figures for the resource limits: how much work a flood gets accepted, and
what a big history read costs the server's memory.

    python -m bench.limits flood [seconds]     # LLM_REQUEST flood, extension silent
    python -m bench.limits intake [seconds]    # the same with the caps lifted
    python -m bench.limits offline [messages]  # 5 GET_OFFLINE_MESSAGES in a big room

Each starts its own ``newage serve`` (bench/common.py) and prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import socketio

from bench.common import cli, newage_server
from bench.history import fill_history

SINCE = "2000-01-01T00:00:00.000Z"  # everything
CALL: dict[str, Any] = {"namespace": "/llm", "timeout": 600}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def trust(data: Path) -> dict[str, str]:
    keys = {}
    for client_id, kind in (("web", "client"), ("SillyTavern-1", "SillyTavern")):
        cli(data, "trust", "add", client_id, "--type", kind)
        keys[client_id] = cli(data, "keys", "create", client_id)
    return keys


async def client(url: str, client_id: str, key: str, kind: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    auth = {"clientId": client_id, "key": key, "clientType": kind, "desc": "bench"}
    await sio.connect(url, namespaces=["/llm"], auth=auth, transports=["websocket"])
    return sio


async def flood(url: str, pid: int, keys: dict[str, str], seconds: float) -> dict[str, Any]:
    ext = await client(url, "SillyTavern-1", keys["SillyTavern-1"], "SillyTavern")
    web = await client(url, "web", keys["web"], "web-app")
    accepted = refused = 0
    codes: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal accepted, refused, counter
        while time.monotonic() < deadline:
            counter += 1
            ack = await web.call(
                "LLM_REQUEST", {"requestId": f"f{counter}", "message": "x"}, namespace="/llm"
            )
            if ack.get("status") == "ok":
                accepted += 1
            else:
                refused += 1
                code = str(ack.get("code"))
                codes[code] = codes.get(code, 0) + 1

    await asyncio.gather(*(worker() for _ in range(20)))
    result = {"seconds": seconds, "accepted": accepted, "refused": refused, "codes": codes}
    result["rss_mb"] = round(rss_mb(pid), 1)
    await web.disconnect()
    await ext.disconnect()
    return result


async def offline(url: str, pid: int, keys: dict[str, str], reads: int) -> dict[str, Any]:
    web = await client(url, "web", keys["web"], "web-app")
    before = rss_mb(pid)
    peak = before
    events = 0
    done = asyncio.Event()

    async def on_any(event: str, *args: Any) -> None:
        nonlocal events
        events += 1

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.02)

    web.on("*", on_any, namespace="/llm")
    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    acks = await asyncio.gather(
        *(
            web.call("GET_OFFLINE_MESSAGES", {"roomName": "big", "since": SINCE}, **CALL)
            for _ in range(reads)
        )
    )
    seconds = time.monotonic() - started
    done.set()
    await sampler
    await web.disconnect()
    return {
        "reads": reads,
        "messages_each": acks[0].get("totalMessages"),
        "seconds": round(seconds, 1),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "events": events,
    }


def main() -> None:
    what = sys.argv[1]
    arg = float(sys.argv[2]) if len(sys.argv) > 2 else None
    keys: dict[str, str] = {}

    def prepare(data: Path) -> None:
        keys.update(trust(data))
        if what == "offline":
            messages = int(arg or 100_000)
            fill_history(data, rooms={"big": messages}, member="web", extension="SillyTavern-1")

    settings: dict[str, Any] = {"bcryptCost": 4, "authFailureLimit": 100000}
    if what == "intake":  # the flood without the caps: request intake throughput
        what = "flood"
        settings |= {
            "maxPendingRequestsPerClient": 100_000,
            "maxPendingRequestsPerExtension": 100_000,
        }
    with newage_server(settings, prepare=prepare) as (url, pid, _data):
        if what == "flood":
            result = asyncio.run(flood(url, pid, keys, arg or 20))
        else:
            result = asyncio.run(offline(url, pid, keys, 5))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
