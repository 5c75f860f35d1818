"""Connection limits: sessions that connect no namespace are closed, limits
per address and in total make room by closing unauthenticated sessions
first, the handshake rate is bounded per (non-loopback) address, and the
server raises its own open-file limit."""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
import websockets

from tests.helpers.actors import connect
from tests.helpers.proc import ServerProcess, run_cli
from tests.helpers.wait import eventually

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


async def idle_socket(server) -> websockets.ClientConnection:
    """An Engine.IO session over websocket that never connects a namespace."""
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    ws = await websockets.connect(url, compression=None)
    opened = await ws.recv()
    assert str(opened).startswith('0{"sid"')
    return ws


async def closed(ws: websockets.ClientConnection) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), 0.05)
    except websockets.ConnectionClosed:
        return True
    except TimeoutError:
        return False
    return False


async def handshake(server, address: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    async with httpx.AsyncClient() as http:
        return await http.get(server.url + HANDSHAKE, headers=headers)


@pytest.mark.parametrize("server_settings", [{"namespaceConnectTimeout": 300}])
async def test_a_session_without_a_namespace_is_closed(server, peers):
    peer = await connect(server, peers, "alice", namespaces=("/llm",))
    idle = await idle_socket(server)

    async def idle_closed() -> bool:
        return await closed(idle)

    await eventually(idle_closed, timeout=10)
    # a session that connected a namespace in time stays
    ack = await peer.call("/llm", "UNKNOWN_EVENT", {})
    assert ack["status"] == "error" and peer.connected("/llm")


@pytest.mark.parametrize("server_settings", [{"namespaceConnectTimeout": 1000}])
async def test_each_unauthenticated_session_is_closed_at_its_own_deadline(server, peers):
    # one timer serves every unauthenticated session: a later one must still
    # get its full time, and an earlier one that authenticated is not touched
    first = await idle_socket(server)
    authenticating = await idle_socket(server)
    await authenticating.send('40/llm,{"clientId": "nobody-trusted"}')  # refused, stays open
    await asyncio.sleep(0.6)
    second = await idle_socket(server)
    await asyncio.sleep(0.6)  # first past its deadline, second not
    await eventually(lambda: closed(first), timeout=1)
    assert not await closed(second)
    await eventually(lambda: closed(second), timeout=2)
    await eventually(lambda: closed(authenticating), timeout=1)
    # a session that connects a namespace in time stays past the deadline
    peer = await connect(server, peers, "alice", namespaces=("/llm",))
    await asyncio.sleep(1.2)
    ack = await peer.call("/llm", "UNKNOWN_EVENT", {})
    assert ack["status"] == "error" and peer.connected("/llm")


@pytest.mark.parametrize("server_settings", [{"maxConnectionsPerAddress": 3}])
async def test_idle_sockets_make_room_for_a_client_that_authenticates(server, peers):
    idle = [await idle_socket(server) for _ in range(3)]
    alice = await connect(server, peers, "alice", namespaces=("/llm",))
    # the oldest idle session made room
    await eventually(lambda: closed(idle[0]), timeout=10)
    assert not await closed(idle[2])
    bob = await connect(server, peers, "bob", namespaces=("/llm",))
    carol = await connect(server, peers, "carol", namespaces=("/llm",))
    # three authenticated sessions fill the address for good
    refused = await handshake(server)
    assert refused.status_code == 401
    assert refused.json() == {
        "status": "error",
        "message": "Too many connections from this address.",
    }
    other = await handshake(server, "203.0.113.5")  # another address is not affected
    assert other.status_code == 200
    assert alice.connected("/llm") and bob.connected("/llm") and carol.connected("/llm")
    for ws in idle:
        await ws.close()


@pytest.mark.parametrize("server_settings", [{"maxConnections": 2}])
async def test_the_total_limit(server, peers):
    await connect(server, peers, "alice", namespaces=("/llm",))
    await connect(server, peers, "bob", namespaces=("/llm",))
    refused = await handshake(server, "203.0.113.5")
    assert refused.status_code == 401
    assert refused.json()["message"] == "The server is at its connection limit; try again later."
    # /healthz is plain HTTP, never an Engine.IO session
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.url + "/healthz")).status_code == 200


@pytest.mark.parametrize("server_settings", [{"handshakeRateLimit": 3}])
async def test_the_handshake_rate_per_address(server):
    codes = [(await handshake(server, "203.0.113.5")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 401]
    assert (
        (await handshake(server, "203.0.113.5"))
        .json()["message"]
        .startswith("Too many connection attempts")
    )
    assert (await handshake(server, "203.0.113.6")).status_code == 200
    # loopback (the extension, the admin) is not rate limited
    assert [(await handshake(server)).status_code for _ in range(5)] == [200] * 5


def test_the_server_raises_its_open_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit is too low to see a difference")
    data = Path(tempfile.mkdtemp(prefix="newage-fd-"))
    try:
        assert run_cli("init", "--data-dir", str(data)).returncode == 0
        server = ServerProcess(data, stdout=subprocess.DEVNULL)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            server.start()  # inherits the low soft limit
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            assert server.proc is not None
            limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
            line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
            got_soft, got_hard = line.split()[3:5]
            assert got_soft == got_hard, line
        finally:
            server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
