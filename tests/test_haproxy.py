"""Two ``newage serve`` processes behind HAProxy with deploy/haproxy.cfg as
shipped (README, "More than one process"): Engine.IO long-polling reaches the
process that holds its session, by the client's address or by HAProxy's
cookie; websockets need no stickiness; /readyz answers through the proxy.

Clients differ by their source address (any 127.x.y.z is loopback on Linux),
because ``balance source`` hashes it: from 127.0.0.1 alone every client would
land on one process and nothing would be shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.helpers.client import Peer, auth
from tests.helpers.node import run_node
from tests.helpers.proc import ServerProcess, free_port, run_cli

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SIO = "/socket.io/"
COOKIE = "NEWAGE"


@dataclass
class Cluster:
    url: str
    backends: dict[str, ServerProcess]  # by the cookie HAProxy gives each
    key: str


def start_haproxy(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    if not os.path.exists(HAPROXY):
        pytest.fail(
            f"haproxy not found ({HAPROXY}): `make test-deps` installs Debian's haproxy",
            pytrace=False,
        )
    check = subprocess.run(
        [HAPROXY, "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # -db: stay in the foreground, so terminate() stops it; its log goes to
    # a file nobody has to keep reading
    with log.open("w") as out:
        return subprocess.Popen(
            [HAPROXY, "-db", "-f", str(CONFIG)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("haproxy") / "data"
    assert run_cli("trust", "add", "bot", "--data-dir", str(data)).returncode == 0
    key = run_cli("keys", "create", "bot", "--data-dir", str(data)).stdout.strip()
    # X-Forwarded-For from HAProxy is believed, so each process sees the
    # client's own address (its per-address limits count clients, not the proxy)
    env = {"NEWAGE_FORWARDED_ALLOW_IPS": '["127.0.0.1"]'}
    # one after the other: the first writes the data directory's defaults
    backends = {
        "newage1": ServerProcess(data, env=env).start(),
        "newage2": ServerProcess(data, env=env).start(),
    }
    port = free_port()
    proxy = start_haproxy(
        {
            **os.environ,
            "NEWAGE_LISTEN": f"127.0.0.1:{port}",
            "NEWAGE_SERVER_1": f"127.0.0.1:{backends['newage1'].port}",
            "NEWAGE_SERVER_2": f"127.0.0.1:{backends['newage2'].port}",
        },
        data.parent / "haproxy.out",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proxy.poll() is None, (data.parent / "haproxy.out").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "HAProxy did not answer /readyz"
            time.sleep(0.1)
        yield Cluster(url, backends, key)
    finally:
        proxy.terminate()
        proxy.wait(10)
        # kept beside the data directory for a post-mortem (--basetemp)
        for name, backend in backends.items():
            (data.parent / f"{name}.out").write_text(backend.stop())


def address(n: int) -> str:
    return f"127.0.{n // 250}.{n % 250 + 2}"


def polling_peer(url: str, source: str, transports: list[str]) -> Peer:
    """A python-socketio client whose every request leaves from ``source``
    and that keeps no cookie (like a page on another origin)."""
    peer = Peer(url, transports=transports)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(source, 0)),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    peer.sio.eio.http_factory = session
    return peer


async def round_trips(peer: Peer, times: int) -> None:
    for _ in range(times):
        ack = await peer.call("/rooms", "GET_ROOMS", {}, timeout=10)
        assert ack["status"] == "ok", ack
        await asyncio.sleep(0.05)


def rooms_sockets(backend: ServerProcess) -> float:
    text = httpx.get(f"{backend.url}/metrics", timeout=5).text
    found = re.search(r'^newage_connections\{namespace="/rooms"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_readyz_answers_through_haproxy(cluster: Cluster):
    async with httpx.AsyncClient() as http:
        ready = await http.get(f"{cluster.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok" and ready.json()["checks"]["store"] is True


async def test_many_polling_clients_stay_on_their_process(cluster: Cluster):
    count = 24
    peers = [polling_peer(cluster.url, address(i), ["polling"]) for i in range(count)]
    # One connect at a time: each writes to the SQLite file both processes
    # share, and connects overlapping on both processes sometimes wait out
    # SQLite's 5 s busy timeout ("database is locked", the connect fails).
    # That is the shared SQLite file's limit, not the proxy's, which is what
    # this test is about; the sessions then live and work side by side.
    gate = asyncio.Semaphore(1)

    async def connect(i: int, peer: Peer) -> None:
        async with gate:
            await peer.open("/rooms", auth("bot", cluster.key, identity=f"poll-{i}"), timeout=10)

    try:
        await asyncio.gather(*(connect(i, p) for i, p in enumerate(peers)))
        await asyncio.gather(*(round_trips(p, 5) for p in peers))
        for i, peer in enumerate(peers):
            assert peer.sio.eio.current_transport == "polling"
            assert peer.connected("/rooms"), f"client {i} lost its session"
            assert not peer.events.get(("/rooms", "disconnect")), f"client {i} was disconnected"
        # both processes hold sessions, and together all of them
        held = {name: rooms_sockets(b) for name, b in cluster.backends.items()}
        assert all(n > 0 for n in held.values()), held
        assert sum(held.values()) == count, held
    finally:
        await asyncio.gather(*(p.close() for p in peers))


def handshake(url: str, source: str) -> tuple[str, str]:
    """A raw Engine.IO handshake from ``source``: the sid, and the process
    HAProxy chose (its cookie)."""
    with http_from(source) as http:
        answer = http.get(f"{url}{SIO}", params={"EIO": "4", "transport": "polling"})
    assert answer.status_code == 200, answer.text
    assert COOKIE in answer.cookies, f"HAProxy set no {COOKIE} cookie: {answer.headers}"
    return json.loads(answer.text[1:])["sid"], answer.cookies[COOKIE]


def http_from(source: str, cookies: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(local_address=source), cookies=cookies, timeout=10
    )


def test_the_cookie_keeps_a_session_whose_address_changed(cluster: Cluster):
    # the process each address is hashed to, as HAProxy's cookie names it
    chosen: dict[str, str] = {}
    for n in range(100, 140):
        chosen.setdefault(handshake(cluster.url, address(n))[1], address(n))
        if len(chosen) == 2:
            break
    assert set(chosen) == {"newage1", "newage2"}, chosen
    first, other = chosen["newage1"], chosen["newage2"]

    sid, cookie = handshake(cluster.url, first)
    assert cookie == "newage1"
    params: dict[str, Any] = {"EIO": "4", "transport": "polling", "sid": sid}
    data = json.dumps(auth("bot", cluster.key, identity="moved"))

    # the same session from an address hashed to the other process: without
    # the cookie it lands there, which does not know the session
    with http_from(other) as stranger:
        lost = stranger.post(f"{cluster.url}{SIO}", params=params, content=f"40/rooms,{data}")
    assert lost.status_code == 400, lost.text

    # with the cookie it reaches its process: a namespace and a round trip
    with http_from(other, {COOKIE: cookie}) as moved:
        sent = moved.post(f"{cluster.url}{SIO}", params=params, content=f"40/rooms,{data}")
        assert sent.status_code == 200 and sent.text == "OK", sent.text
        connected = moved.get(f"{cluster.url}{SIO}", params=params)
        assert connected.text.startswith('40/rooms,{"sid"'), connected.text
        sent = moved.post(
            f"{cluster.url}{SIO}", params=params, content='42/rooms,1["GET_ROOMS",{}]'
        )
        assert sent.status_code == 200, sent.text
        answer = moved.get(f"{cluster.url}{SIO}", params=params)
    assert answer.text.startswith("43/rooms,1["), answer.text
    assert json.loads(answer.text[len("43/rooms,1") :])[0]["status"] == "ok", answer.text


async def test_upgraded_and_websocket_only_clients(cluster: Cluster):
    upgraded = polling_peer(cluster.url, address(200), ["polling", "websocket"])
    direct = Peer(cluster.url)  # websocket only, from 127.0.0.1
    try:
        await upgraded.open("/rooms", auth("bot", cluster.key, identity="upgraded"))
        await direct.open("/rooms", auth("bot", cluster.key, identity="direct"))
        deadline = time.monotonic() + 5
        while upgraded.sio.eio.current_transport != "websocket":
            assert time.monotonic() < deadline, "the polling session was not upgraded"
            await asyncio.sleep(0.02)
        await round_trips(upgraded, 5)
        await round_trips(direct, 5)
        assert upgraded.connected("/rooms") and direct.connected("/rooms")
    finally:
        await upgraded.close()
        await direct.close()


@pytest.mark.node
async def test_the_official_js_client_polls_through_haproxy(cluster: Cluster):
    sources = [address(300 + i) for i in range(16)]
    result = await run_node(
        "haproxy_polling.mjs", cluster.url, "bot", cluster.key, ",".join(sources)
    )
    assert result["ok"], result
    assert result["connected"] == len(sources), result
    # every client kept its session, as the cookie named its process
    assert set(result["cookies"]) == {"newage1", "newage2"}, result
