"""The cluster acts as one (docs/cluster.md): function calls with an ack
across nodes, settings changed over the wire on every node, and the
monitor's request list and trends over every node. Real processes, real
clients, one PostgreSQL database and one Redis prefix per test."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest

from newage.domain.ops.series import FIELDS, merge
from newage.protocol.acks import SeriesView
from newage.protocol.names import ClientKind
from tests.helpers.actors import DECLARED
from tests.helpers.client import Peer, auth
from tests.helpers.cluster import REDIS_URL, Cluster, MakeCluster
from tests.helpers.proc import ServerProcess
from tests.helpers.server import RunningServer
from tests.helpers.wait import eventually

FC = "/function_call"


def ok(ack: dict) -> dict:
    assert ack["status"] == "ok", ack
    return ack


async def node_id(c: Cluster, index: int) -> str:
    return str((await c.status(index))["cluster"]["node"])


async def answerer(c: Cluster, index: int, client_id: str, answer: Any) -> Peer:
    """A client on node ``index`` answering forwarded FUNCTION_CALLs with
    ``answer(call)`` (a coroutine function); its calls are kept in ``calls``."""
    key = await c.key(client_id, ClientKind.CLIENT)
    peer = Peer(c.nodes[index].url)
    c.peers.append(peer)
    peer.calls = []  # type: ignore[attr-defined]

    async def handler(data: Any) -> Any:
        peer.calls.append(data)  # type: ignore[attr-defined]
        return await answer(data)

    peer.sio.on("FUNCTION_CALL", handler, namespace=FC)
    await peer.open(FC, auth(client_id, key, clientType=DECLARED[ClientKind.CLIENT]))
    return peer


async def _non_empty(found: Awaitable[list[Any]]) -> bool:
    return bool(await found)


def call(function: str, args: list[Any], target: str, request_id: str) -> dict[str, Any]:
    return {"requestId": request_id, "functionName": function, "args": args, "target": target}


# ---------------------------------------------------------------- function calls
async def test_a_function_call_reaches_a_client_of_another_node(cluster: MakeCluster):
    c = await cluster(2, NEWAGE_FUNCTION_CALL_TIMEOUT="2500")
    never = asyncio.Event()

    async def answer(data: dict[str, Any]) -> Any:
        if data["functionName"] == "slow":
            await never.wait()
        if data["functionName"] == "mute":
            return None
        return {"requestId": data["requestId"], "success": True, "result": sum(data["args"])}

    calc = await answerer(c, 0, "calc", answer)
    web = await c.connect(1, "web", namespaces=(FC,))
    await c.settled()
    ack = await web.call(FC, "FUNCTION_CALL", call("add", [2, 3], "calc", "f1"))
    assert ack == {"requestId": "f1", "success": True, "result": 5, "status": "ok"}
    caller = {"clientId": "web", "identity": "web", "kind": "client"}
    assert calc.calls[0] == {**call("add", [2, 3], "calc", "f1"), "caller": caller}  # type: ignore[attr-defined]
    # an ack without a value does not count, on another node either
    empty = await web.call(FC, "FUNCTION_CALL", call("mute", [], "calc", "f0"))
    assert empty["error"] == {
        "message": 'Target "calc" did not answer the call.',
        "code": "unavailable",
    }, empty
    # no answer within functionCallTimeout: a timeout, not a hang
    started = time.monotonic()
    late = await web.call(FC, "FUNCTION_CALL", call("slow", [], "calc", "f2"), timeout=10)
    assert late["success"] is False and late["error"]["code"] == "timeout", late
    assert 2.0 < time.monotonic() - started < 5
    # the callee leaves: the other node no longer finds it
    await calc.close()

    async def not_connected() -> bool:
        ack = await web.call(FC, "FUNCTION_CALL", call("add", [1], "calc", "f3"))
        return ack["success"] is False and ack["error"]["code"] == "unavailable"

    await eventually(not_connected, timeout=5)


async def test_the_callee_node_killed_mid_call_fails_the_call_in_time(cluster: MakeCluster):
    c = await cluster(3, NEWAGE_FUNCTION_CALL_TIMEOUT="20000")
    reached = asyncio.Event()

    async def answer(data: dict[str, Any]) -> Any:
        reached.set()
        await asyncio.Event().wait()  # its process dies first

    await answerer(c, 0, "calc", answer)
    web = await c.connect(1, "web", namespaces=(FC,))
    await c.settled()
    pending = asyncio.create_task(
        web.call(FC, "FUNCTION_CALL", call("add", [1], "calc", "k1"), timeout=30)
    )
    await asyncio.wait_for(reached.wait(), 5)
    proc = c.nodes[0].proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait)
    killed = time.monotonic()
    ack = await pending
    # the dead node is noticed by its heartbeat (5 s), well before the 20 s timeout
    assert time.monotonic() - killed < 12
    assert ack["success"] is False and ack["error"]["code"] == "unavailable", ack


# ---------------------------------------------------------------- settings
async def test_settings_changed_on_one_node_hold_on_every_node(
    cluster: MakeCluster, tmp_path: Path
):
    c = await cluster(2)
    boss = await c.connect(0, "boss", ClientKind.MONITOR, ("/", "/debug", "/rooms", FC))
    other = await c.connect(1, "boss", ClientKind.MONITOR, ("/", "/debug", "/rooms", FC))
    await c.settled()
    port_1 = (await c.status(1))["serverPort"]
    # debug mode: the other node's live level follows, and its /debug sockets hear once
    assert ok(await boss.call("/debug", "TOGGLE_DEBUG_MODE"))["debugMode"] is True

    async def debug_on_1() -> bool:
        status = await c.status(1)
        return status["debugMode"] is True and status["logLevel"] == "debug"

    await eventually(debug_on_1, timeout=1)
    assert await other.next("/debug", "DEBUG_MODE_CHANGED") == {"debugMode": True}
    await asyncio.sleep(0.3)
    assert other.received("/debug", "DEBUG_MODE_CHANGED") == []  # not a second time

    async def debug_changes() -> list[dict[str, Any]]:
        filters = {"action": "settings.change", "search": "debugMode"}
        return list(ok(await other.call("/debug", "GET_AUDIT_LOG", filters))["entries"])

    # one audit record, by the node that took the change (each flushes every second)
    await eventually(lambda: _non_empty(debug_changes()), timeout=3)
    await asyncio.sleep(1.5)
    assert len(await debug_changes()) == 1
    # the default request mode: a room made on the other node gets it
    mode = ok(await boss.call("/rooms", "SET_MESSAGE_REQUEST_MODE", {"mode": "MasterOnly"}))
    assert mode["default"] is True

    async def room_mode_on_1(name: str = "late-room") -> str:
        made = ok(await other.call("/rooms", "CREATE_ROOM", name))
        mode = str(made["room"]["mode"])
        ok(await other.call("/rooms", "DELETE_ROOM", name))
        return mode

    await asyncio.sleep(1.0)  # "within a second"
    assert await room_mode_on_1() == "MasterOnly"
    # the settings function: shared settings go everywhere, a node's port stays its own
    save = {
        "requestId": "s1",
        "functionName": "saveJsonToFile",
        "args": ["./settings/server_settings.json", {"transport": "polling", "serverPort": 4999}],
    }
    assert (await boss.call(FC, "FUNCTION_CALL", save))["success"] is True
    read = {
        "requestId": "s2",
        "functionName": "readJsonFromFile",
        "args": ["./settings/server_settings.json"],
    }

    async def polling_on_1() -> bool:
        result = (await other.call(FC, "FUNCTION_CALL", read))["result"]["result"]
        return result["transport"] == "polling" and result["serverPort"] == port_1

    await eventually(polling_on_1, timeout=1)

    # one setting changed on both nodes at once: they end up agreeing
    async def transport(peer: Peer) -> str:
        return str((await peer.call(FC, "FUNCTION_CALL", read))["result"]["result"]["transport"])

    def save_transport(value: str) -> dict[str, Any]:
        return {**save, "args": [save["args"][0], {"transport": value}]}

    for _ in range(5):
        acks = await asyncio.gather(
            boss.call(FC, "FUNCTION_CALL", save_transport("polling")),
            other.call(FC, "FUNCTION_CALL", save_transport("websocket")),
        )
        assert all(a["success"] for a in acks), acks

        async def agreed() -> bool:
            shared = await c.redis.hget(f"{c.prefix}:settings", "transport")
            return await transport(boss) == await transport(other) == json.loads(shared)

        await eventually(agreed, timeout=2)
    ok(await boss.call(FC, "FUNCTION_CALL", save_transport("polling")))
    await eventually(polling_on_1, timeout=1)
    # a node started later, on a data directory of its own, takes the cluster's settings
    late = ServerProcess(tmp_path / "late", env=c.env)
    c.nodes.append(late)
    await asyncio.to_thread(late.start)
    watcher = await c.connect(2, "boss", ClientKind.MONITOR, ("/", "/debug", FC))
    status = ok(await watcher.call("/debug", "SERVER_STATUS"))["serverStatus"]
    assert status["debugMode"] is True and status["logLevel"] == "debug"
    assert (await watcher.call(FC, "FUNCTION_CALL", read))["result"]["result"][
        "transport"
    ] == "polling"
    # the nodes' files hold the changes: the last node to stop takes them off Redis
    shared = f"{c.prefix}:settings"
    assert await c.redis.exists(shared)
    for peer in c.peers:
        await peer.close()
    for node in c.nodes[:-1]:
        await asyncio.to_thread(node.stop)
    assert await c.redis.exists(shared)
    await asyncio.to_thread(late.stop)
    assert not await c.redis.exists(shared)


# ---------------------------------------------------------------- monitor views
async def test_an_admin_sees_the_requests_of_every_node(cluster: MakeCluster):
    c = await cluster(3)
    names = ("SillyTavern-1", "SillyTavern-2")
    exts = [await c.extension(0, names[0]), await c.extension(1, names[1])]
    webs = [await c.connect(0, "web"), await c.connect(1, "bob")]
    boss = await c.connect(2, "boss", ClientKind.MONITOR, ("/", "/debug"))
    await c.settled()
    nodes = [await node_id(c, i) for i in range(3)]
    for i, (web, ext) in enumerate(zip(webs, exts, strict=True)):
        ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": f"r{i}", "message": "go"}))
        assert ack["targets"] == [names[i]]  # each node's own extension
        await ext.next_request()
        await ext.stream(["running "], request_id=f"r{i}")
    page = ok(await boss.call("/debug", "GET_REQUESTS", {"state": "open"}))
    assert page["total"] == 2 and "unanswered" not in page
    found = {r["requestId"]: r for r in page["requests"]}
    assert {r: found[r]["node"] for r in found} == {"r0": nodes[0], "r1": nodes[1]}
    assert {r["state"] for r in found.values()} == {"streaming"}
    one = ok(await boss.call("/debug", "GET_REQUESTS", {"requestId": "r1"}))["request"]
    assert one["node"] == nodes[1] and one["trace"][0]["event"] == "received"
    paged = ok(await boss.call("/debug", "GET_REQUESTS", {"offset": 1, "limit": 1}))
    assert paged["total"] == 2 and len(paged["requests"]) == 1
    # /metrics stays per process, naming its node
    async with httpx.AsyncClient(timeout=5) as http:
        for index in range(3):
            scraped = (await http.get(f"{c.nodes[index].url}/metrics")).text
            assert f'newage_cluster_node_info{{node="{nodes[index]}"}} 1.0' in scraped
    # a node that died is left out after a short wait, and named
    proc = c.nodes[1].proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait)
    started = time.monotonic()
    partial = ok(await boss.call("/debug", "GET_REQUESTS", {}, timeout=10))
    assert time.monotonic() - started < 4
    assert [r["requestId"] for r in partial["requests"]] == ["r0"]
    assert partial["unanswered"] == [nodes[1]]


async def test_the_trends_add_up_the_tokens_of_every_node(cluster: MakeCluster):
    c = await cluster(2, NEWAGE_METRICS_SAMPLE_MS="250")
    names = ("SillyTavern-1", "SillyTavern-2")
    exts = [await c.extension(0, names[0]), await c.extension(1, names[1])]
    webs = [await c.connect(0, "web"), await c.connect(1, "bob")]
    boss = await c.connect(0, "boss", ClientKind.MONITOR, ("/", "/debug"))
    await c.settled()
    counts = (30, 50)
    for i, (web, ext) in enumerate(zip(webs, exts, strict=True)):
        ok(await web.call("/llm", "LLM_REQUEST", {"requestId": f"t{i}", "message": "go"}))
        await ext.next_request()
        await ext.stream([f"{n} " for n in range(counts[i])], request_id=f"t{i}", final=True)
        await web.next("/llm", "SERVER_STREAM_END", timeout=10)
    node_1 = await node_id(c, 1)

    seen: dict[str, Any] = {}

    async def summed() -> bool:
        view = seen["view"] = ok(await boss.call("/debug", "GET_METRICS_SERIES", {}))
        step = view["intervalMs"] / 1000
        drawn = sum(v * step for v in view["series"]["tokens"])
        return view["totals"]["tokens"] == sum(counts) and abs(drawn - sum(counts)) < 8

    await eventually(summed, timeout=6)
    view = seen["view"]
    assert view["totals"]["requests"] == 2
    assert {(e["identity"], e.get("node")) for e in view["extensions"]} == {
        (names[0], None),
        (names[1], node_1),
    }
    times = view["series"]["t"]
    assert times == sorted(set(times))  # one point per interval
    # asking since the last point: nothing twice
    later = ok(await boss.call("/debug", "GET_METRICS_SERIES", {"since": times[-1]}))
    assert all(t > times[-1] for t in later["series"]["t"])


async def test_outbox_call_reaches_a_socket_of_another_node(
    cluster: MakeCluster, tmp_path: Path, pg_url: str
):
    """``Outbox.call`` (the delivery port's call with an ack) from a node
    running in this process to a client's socket on a node process."""
    c = await cluster(2)
    never = asyncio.Event()

    async def answer(data: dict[str, Any]) -> Any:
        if data.get("slow"):
            await never.wait()
        return {"echo": data["n"]}

    calc = await answerer(c, 0, "calc", answer)
    sid = calc.sio.get_sid(FC)
    assert sid is not None
    here = RunningServer(
        tmp_path / "here",
        {"databaseUrl": pg_url, "redisUrl": REDIS_URL, "redisPrefix": c.prefix},
    )
    await here.start()
    try:
        app = here.app
        assert app is not None and app.cluster is not None
        cluster_node = app.cluster
        await eventually(lambda: bool(cluster_node.nodes_for(FC, [sid])), timeout=10)
        assert sid not in app.presence.sockets  # not a socket of this node
        got = await app.outbox.call(FC, sid, "FUNCTION_CALL", {"n": 7}, 5)
        assert got == {"echo": 7}
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await app.outbox.call(FC, sid, "FUNCTION_CALL", {"n": 1, "slow": True}, 1)
        assert time.monotonic() - started < 4
        # the socket's node dies during a call: an error once its heartbeat expires
        pending = asyncio.create_task(
            app.outbox.call(FC, sid, "FUNCTION_CALL", {"n": 2, "slow": True}, 30)
        )
        await eventually(lambda: len(calc.calls) == 3)  # type: ignore[attr-defined]
        proc = c.nodes[0].proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        killed = time.monotonic()
        with pytest.raises(ConnectionError):
            await pending
        assert time.monotonic() - killed < 12
    finally:
        await here.stop()


def test_merging_the_nodes_trends_sums_each_interval_once():
    """The trends' arithmetic (domain/ops/series.py): points of two nodes,
    sampled at different moments, one node with two points in an interval."""

    def view(points: list[tuple[float, ...]], tokens: int) -> SeriesView:
        series: dict[str, list[float | None]] = {name: [] for name in FIELDS}
        for point in points:
            for name, value in zip(FIELDS, point, strict=True):
                series[name].append(None if name == "firstTokenMs" and value < 0 else value)
        totals = {"requests": 1, "tokens": tokens, "failures": 0}
        return {"intervalMs": 1000, "windowSeconds": 3600, "series": series, "totals": totals}

    #          t      requests tokens failures firstTokenMs connections inFlight
    a = view([(100.2, 1.0, 10.0, 0.0, 40.0, 3.0, 1.0), (101.2, 0.0, 20.0, 0.0, -1.0, 3.0, 1.0)], 30)
    b = view(
        [
            (100.9, 2.0, 5.0, 1.0, 60.0, 2.0, 0.0),
            (101.05, 0.0, 6.0, 0.0, -1.0, 2.0, 0.0),  # drifted: two in (101, 102]
            (101.95, 0.0, 8.0, 0.0, -1.0, 4.0, 2.0),
            (102.5, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0),  # (102, 103] is not over yet
        ],
        28,
    )
    merged = merge([a, b], 1000, now=102.9)
    assert merged["series"] == {
        "t": [101.0, 102.0],
        "requests": [3.0, 0.0],
        "tokens": [15.0, 27.0],
        "failures": [1.0, 0.0],
        "firstTokenMs": [50.0, None],
        "connections": [5.0, 6.0],
        "inFlight": [1.0, 2.0],
    }
    assert merged["totals"] == {"requests": 2, "tokens": 58, "failures": 0}
    # a quarter of an interval after its end, (102, 103] is shown too
    assert merge([a, b], 1000, now=103.25)["series"]["t"] == [101.0, 102.0, 103.0]
