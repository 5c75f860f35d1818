"""Two abuse scenarios, measured on a real ``newage serve`` process.

``slow``: one reader stops reading in a busy room (members chatting in a
Conversational room, 20 KB messages, as fast as the server acknowledges).
Reported: the server's RSS growth while the reader is stalled, how long until
the server drops it, and the RSS still held after the drop and a pause.

``flood``: N idle Engine.IO sessions that never connect a namespace (opened
from loopback as fast as they are accepted), then the time a legitimate
client needs to connect ``/llm`` and the latency of ``/healthz``. ``--nofile``
starts the server with that soft open-file limit (the usual default is 1024).

``--server-src DIR`` runs the server from another checkout's ``src`` (e.g. a
``git archive main`` unpacked in /tmp) to measure the code before a change.

``logins``: ``getKey`` as fast as the server answers (keys issued per
second, the server's CPU), then 21 bad keys for the admin from loopback and
whether the admin's and the extension's own keys still open.

Usage: python -m bench.abuse slow [--seconds S] [--server-src DIR]
       python -m bench.abuse logins [--seconds S] [--server-src DIR]
       python -m bench.abuse flood [--sockets N] [--nofile N] [--server-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import websockets
from tests.helpers.client import Peer, auth
from tests.helpers.proc import ServerProcess
from tests.helpers.server import write_settings
from tests.helpers.stalled import StalledReader

from bench.common import cli, cpu_seconds

TEXT = "x" * 20_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def server(
    settings: dict[str, Any], src: Path | None, nofile: int | None = None
) -> Iterator[tuple[ServerProcess, Path, dict[str, str]]]:
    data = Path(tempfile.mkdtemp(prefix="newage-abuse-"))
    cli(data, "init")
    write_settings(data, {"bcryptCost": 4, **settings})
    keys = {}
    for client_id, kind in (("admin", "monitor"), ("writer", "client"), ("stall", "client")):
        cli(data, "trust", "add", client_id, "--type", kind)
        keys[client_id] = cli(data, "keys", "create", client_id)
    env = {"PYTHONPATH": str(src)} if src is not None else {}
    proc = ServerProcess(data, env=env, stdout=subprocess.DEVNULL)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if nofile is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    try:
        proc.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield proc, data, keys
    finally:
        proc.stop(timeout=5)
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------------- slow
async def slow(args: argparse.Namespace) -> dict[str, Any]:
    with server({}, args.server_src) as (proc, _, keys):
        assert proc.proc is not None
        pid = proc.proc.pid
        boss = Peer(proc.url)
        await boss.open("/rooms", auth("admin", keys["admin"], clientType="monitor"))
        writer = Peer(proc.url)
        await writer.open("/llm", auth("writer", keys["writer"]))
        stalled = StalledReader(proc.port)
        await stalled.open("/llm", auth("stall", keys["stall"]))
        await boss.call("/rooms", "CREATE_ROOM", {"roomName": "busy"})
        for member in ("writer", "stall"):
            await boss.call(
                "/rooms",
                "ADD_CLIENT_TO_ROOM",
                {"identity": member, "roomName": "busy", "role": "guest"},
            )
        mode = {"roomName": "busy", "mode": "Conversational"}
        await boss.call("/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", mode)
        base = rss_mb(pid)
        start = time.monotonic()
        samples = [(0.0, base)]
        sent = 0
        dropped_at = None
        peak = base
        while time.monotonic() - start < args.seconds:
            await writer.call(
                "/llm",
                "LLM_REQUEST",
                {"requestId": f"m{sent}", "message": TEXT, "targetRoom": "busy"},
                timeout=30,
            )
            sent += 1
            if sent % 20 == 0:
                now = time.monotonic() - start
                rss = rss_mb(pid)
                peak = max(peak, rss)
                samples.append((round(now, 2), round(rss, 1)))
                if dropped_at is None and not stalled.established():
                    dropped_at = now
                    break
        stalled_for = (dropped_at if dropped_at is not None else time.monotonic() - start) or 1
        grown = peak - base
        # the writer stops; what does the server still hold a little later?
        await asyncio.sleep(5)
        after = rss_mb(pid)
        await writer.close()
        await boss.close()
        stalled.close()
        return {
            "messages_sent": sent,
            "bytes_per_message": len(TEXT),
            "rss_base_mb": round(base, 1),
            "rss_peak_mb": round(peak, 1),
            "growth_mb_per_s_while_stalled": round(grown / stalled_for, 2),
            "dropped_after_s": round(dropped_at, 1) if dropped_at is not None else None,
            "rss_5s_after_mb": round(after, 1),
            "held_after_mb": round(after - base, 1),
            "samples": samples[-10:],
        }


# ---------------------------------------------------------------------- flood
async def healthz(url: str) -> tuple[int | str, float]:
    """Status and median latency (ms) of five /healthz requests in a row."""
    times = []
    status: int | str = 0
    async with httpx.AsyncClient(timeout=20) as http:
        for _ in range(5):
            t = time.monotonic()
            try:
                status = (await http.get(url + "/healthz")).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__, round((time.monotonic() - t) * 1000, 1)
            times.append(time.monotonic() - t)
    return status, round(statistics.median(times) * 1000, 1)


async def idle(ws_url: str, opened: list[Any]) -> None:
    try:
        ws = await asyncio.wait_for(websockets.connect(ws_url, compression=None), 10)
        await asyncio.wait_for(ws.recv(), 10)
        opened.append(ws)
    except Exception:
        pass


async def flood(args: argparse.Namespace) -> dict[str, Any]:
    with server({}, args.server_src, args.nofile) as (proc, _, keys):
        ws_url = proc.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        quiet_status, quiet_ms = await healthz(proc.url)
        opened: list[Any] = []
        t0 = time.monotonic()
        for batch in range(0, args.sockets, 100):
            await asyncio.gather(
                *(idle(ws_url, opened) for _ in range(min(100, args.sockets - batch)))
            )
        flood_s = time.monotonic() - t0
        t1 = time.monotonic()
        legit: str
        try:
            async with asyncio.timeout(20):
                async with websockets.connect(ws_url, compression=None) as ws:
                    await ws.recv()
                    await ws.send(f"40/llm,{json.dumps(auth('writer', keys['writer']))}")
                    reply = str(await ws.recv())
                    legit = "ok" if reply.startswith("40/llm,") else f"refused {reply[:80]}"
        except Exception as exc:
            legit = f"failed: {type(exc).__name__}"
        legit_s = time.monotonic() - t1
        status, health_ms = await healthz(proc.url)
        still_open = 0
        for ws in opened:
            still_open += ws.state.name == "OPEN"
            with contextlib.suppress(Exception):
                await ws.close()
        return {
            "sockets_tried": args.sockets,
            "sessions_opened": len(opened),
            "flood_seconds": round(flood_s, 2),
            "sessions_still_open_after_measuring": still_open,
            "legit_connect": legit,
            "legit_connect_ms": round(legit_s * 1000, 1),
            "healthz_before_flood": quiet_status,
            "healthz_before_flood_ms": quiet_ms,
            "healthz": status,
            "healthz_ms_median_of_5": health_ms,
            "server_soft_nofile": args.nofile,
        }


# ---------------------------------------------------------------------- logins
async def opens(url: str, namespace: str, data: dict[str, Any]) -> str:
    peer = Peer(url)
    try:
        await peer.open(namespace, data)
        return "ok"
    except Exception as exc:
        return f"refused: {getattr(exc, 'message', exc)}"
    finally:
        await peer.close()


async def logins(args: argparse.Namespace) -> dict[str, Any]:
    """getKey as fast as the server answers for ``--seconds`` (keys issued
    per second, server CPU); then 21 bad keys for the admin from loopback:
    do the admin's and the extension's own keys still open?"""
    settings = {"bcryptCost": 10}
    with server(settings, args.server_src) as (proc, data, keys):
        assert proc.proc is not None
        cli(data, "trust", "add", "SillyTavern-1", "--type", "SillyTavern")
        getkey = auth("SillyTavern-1", "getKey", clientType="SillyTavern")
        issued = 0
        refused = 0
        ext_key = None
        cpu0 = cpu_seconds(proc.proc.pid)
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            peer = Peer(proc.url)
            try:
                await peer.open("/auth", getkey)
                assigned = await peer.next("/auth", "CLIENT_KEY_ASSIGNED", timeout=10)
                if assigned.get("success"):
                    issued += 1
                    ext_key = assigned["key"]
                else:
                    refused += 1
            except Exception:
                refused += 1
            finally:
                await peer.close()
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(proc.proc.pid) - cpu0
        admin = auth("admin", keys["admin"], clientType="monitor")
        extension = auth("SillyTavern-1", ext_key, clientType="SillyTavern")
        first = await opens(proc.url, "/llm", admin)
        ext_first = await opens(proc.url, "/llm", extension)
        bad = [await opens(proc.url, "/llm", {**admin, "key": "wrong"}) for _ in range(21)]
        after_admin = await opens(proc.url, "/llm", admin)
        after_ext = await opens(proc.url, "/llm", extension)
        return {
            "admin_first_connect": first,
            "bad_attempts": len(bad),
            "last_bad_attempt": bad[-1],
            "admin_after_21_bad": after_admin,
            "extension_first_connect": ext_first,
            "extension_after_21_bad_for_admin": after_ext,
            "getkey_seconds": round(elapsed, 1),
            "keys_issued": issued,
            "keys_issued_per_s": round(issued / elapsed, 2),
            "getkey_refused": refused,
            "server_cpu_share": round(cpu / elapsed, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="scenario", required=True)
    p_slow = sub.add_parser("slow")
    p_slow.add_argument("--seconds", type=float, default=90)
    p_flood = sub.add_parser("flood")
    p_flood.add_argument("--sockets", type=int, default=1500)
    p_flood.add_argument("--nofile", type=int, default=1024)
    p_logins = sub.add_parser("logins")
    p_logins.add_argument("--seconds", type=float, default=10)
    for p in (p_slow, p_flood, p_logins):
        p.add_argument("--server-src", type=Path)
    args = parser.parse_args()
    run = {"slow": slow, "flood": flood, "logins": logins}[args.scenario]
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
