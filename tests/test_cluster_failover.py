"""A cluster that survives a dead node and routes across nodes (docs/cluster.md):
real ``newage serve`` processes on PostgreSQL and Redis, real clients."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from newage.protocol.names import ClientKind
from tests.helpers.client import Peer
from tests.helpers.cluster import Cluster, MakeCluster
from tests.helpers.fake_extension import FakeExtension
from tests.helpers.pg import PgDatabases, sql
from tests.helpers.proc import ServerProcess
from tests.helpers.wait import eventually
from tests.test_cluster import ok

MONITOR_ROOM = "monitor-room"
ROUNDS = 4


async def history(peer: Peer, room: str) -> list[dict[str, Any]]:
    ok(await peer.call("/llm", "GET_FULL_CONTEXT", {"roomName": room}))
    update = await peer.next("/llm", "UPDATE_CONTEXT", lambda p: p["roomName"] == room)
    return list(update["context"])


def answers_to(context: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [m for m in context if m.get("isResponse") and m.get("requestId") == request_id]


def kill(node: ServerProcess) -> None:
    proc = node.proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def test_a_killed_nodes_open_answer_is_closed_once_by_a_survivor(cluster: MakeCluster):
    """Two survivors race for the dead node's answers: one closes each, in the
    history, as a restart would (failed, incomplete, the text saved last)."""
    c = await cluster(3)
    ext, web = await c.requested("k1")
    await ext.stream(["half an "], request_id="k1")
    await web.next("/llm", "SERVER_STREAM_DATA", timeout=10)
    url = c.env["NEWAGE_DATABASE_URL"]

    async def saved() -> bool:  # the partial text is saved once a second
        rows = await sql(url, "SELECT text, owner FROM pending_answers WHERE request_id = 'k1'")
        return len(rows) == 1 and rows[0]["text"] == "half an " and rows[0]["owner"] != ""

    await eventually(saved, timeout=5)
    await asyncio.to_thread(kill, c.nodes[0])
    killed = time.monotonic()

    async def closed() -> bool:
        return bool(answers_to(await history(web, "web"), "k1"))

    await eventually(closed, timeout=15, interval=0.2)
    assert time.monotonic() - killed < 15
    await asyncio.sleep(3)  # both survivors have seen the heartbeat expire since
    context = await history(web, "web")
    [answer] = answers_to(context, "k1")
    assert answer["status"] == "failed" and answer["incomplete"] is True, answer
    assert answer["data"] == "half an " and answer["identity"] == "SillyTavern-1"
    assert answer["error"] == "The server stopped before the answer was complete."
    notes = [m["data"] for m in context if "unfinished answer" in str(m.get("data"))]
    assert notes == [
        "[System] A server process stopped; 1 unfinished answer(s) (k1) were kept as incomplete."
    ]
    assert await sql(url, "SELECT * FROM pending_answers") == []


async def test_a_starting_node_closes_only_the_answers_of_nodes_not_alive(
    cluster: MakeCluster,
):
    """A leftover of a node long gone is closed by a node joining a running
    cluster; a live node's open answer is left alone."""
    c = await cluster(2)
    ext, web = await c.requested("live")
    output_id = str(uuid.uuid4())
    await ext.token(output_id, "before; ", first=True)
    url = c.env["NEWAGE_DATABASE_URL"]
    await sql(
        url,
        "INSERT INTO pending_answers (request_id, ext, room, requester, mode, kind, text, owner) "
        "VALUES ('ghost', 'SillyTavern-9', 'web', 'web', 'Immediate', 'user', 'lost', 'gone1')",
    )

    async def live_saved() -> bool:
        return bool(await sql(url, "SELECT 1 FROM pending_answers WHERE request_id = 'live'"))

    await eventually(live_saved, timeout=5)
    newcomer = ServerProcess(c.data, env=c.env)
    c.nodes.append(newcomer)
    await asyncio.to_thread(newcomer.start)
    context = await history(web, "web")
    [ghost] = answers_to(context, "ghost")
    assert ghost["status"] == "failed" and ghost["data"] == "lost"
    assert any("The server restarted; 1 unfinished answer(s) (ghost)" in str(m) for m in context)
    assert answers_to(context, "live") == []
    await ext.token(output_id, "after", first=False, final=True)
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
    assert end["status"] == "completed" and end["data"] == "before; after", end
    [live] = answers_to(await history(web, "web"), "live")
    assert live["status"] == "completed"


async def test_three_nodes_starting_at_once_on_an_empty_database(
    tmp_path: Path, pg_databases: PgDatabases
):
    """Each round a new database: every node migrates, seeds monitor-room and
    imports the trust files at the same moment (a round alone hit the race
    on main about one time in three)."""
    for round_ in range(ROUNDS):
        url = pg_databases.create()
        c = Cluster(tmp_path / f"round{round_}", 3, {"NEWAGE_DATABASE_URL": url})
        try:
            await asyncio.gather(*(asyncio.to_thread(node.start) for node in c.nodes))
            for index in range(3):
                c.admins.append(
                    await c.connect(index, "watch", ClientKind.MONITOR, ("/", "/rooms"))
                )
            rooms = await sql(url, "SELECT name FROM rooms WHERE name <> 'watch'")
            assert [r["name"] for r in rooms] == [MONITOR_ROOM]
            for admin in c.admins:
                listed = ok(await admin.call("/rooms", "GET_ROOMS", {}))["rooms"]
                assert MONITOR_ROOM in listed
        finally:
            for index, output in enumerate(await c.stop()):
                print(f"--- round {round_} node {index}\n{output}")


async def routes_to(c: Cluster, index: int, extensions: set[str]) -> None:
    """Node ``index`` counts these other nodes' extensions (their loads
    are exchanged after each heartbeat)."""

    async def seen() -> bool:
        return set((await c.status(index))["cluster"]["remoteExtensions"]) == extensions

    await eventually(seen, timeout=10, interval=0.1)


async def two_extensions(c: Cluster) -> tuple[FakeExtension, FakeExtension]:
    await c.key("SillyTavern-2", ClientKind.SILLYTAVERN)
    return await c.extension(0, "SillyTavern-1"), await c.extension(1, "SillyTavern-2")


async def broadcast_from_node_0(c: Cluster) -> tuple[FakeExtension, FakeExtension, Peer]:
    """An extension on each node, the Broadcast policy, a requester on node 0
    that node 0 routes to both extensions."""
    one, two = await two_extensions(c)
    boss = await c.connect(0, "boss", ClientKind.MONITOR, ("/", "/rooms"))
    web = await c.connect(0, "web")
    await c.settled()
    ok(await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Broadcast"}))
    await routes_to(c, 0, {"SillyTavern-2"})
    return one, two, web


async def test_a_broadcast_request_reaches_the_extensions_of_every_node(cluster: MakeCluster):
    c = await cluster(2)
    one, two, web = await broadcast_from_node_0(c)
    ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "b1", "message": "all"}))
    assert sorted(ack["targets"]) == ["SillyTavern-1", "SillyTavern-2"], ack
    for ext in (one, two):
        request = await ext.next_request(timeout=10)
        assert request["requestId"] == "b1" and request["currentRequest"]["message"] == "all"
    await two.stream(["from ", "two"], request_id="b1", final=True)
    second = await web.next(
        "/llm", "LLM_RESPONSE", lambda p: p["identity"] == "SillyTavern-2", timeout=10
    )
    assert second["data"] == "from two" and second["requestId"] == "b1"
    statuses = [p["status"] for p in web.received("/llm", "REQUEST_STATUS_UPDATE")]
    assert "completed" not in statuses, statuses  # one extension still owes its answer
    await one.stream(["from ", "one"], request_id="b1", final=True)
    done = await web.next(
        "/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed", timeout=10
    )
    assert done["requestId"] == "b1"
    responses = [(p["identity"], p["data"]) for p in web.received("/llm", "LLM_RESPONSE")]
    assert responses == [("SillyTavern-1", "from one")]  # and the other's above: once each
    found = ok(await web.call("/llm", "GET_REQUEST", {"requestId": "b1"}))
    assert found["requestStatus"] == "completed" and len(found["answers"]) == 2, found
    await asyncio.sleep(1)  # nothing more comes: no second end of the request
    for ext in (one, two):  # each was asked once (the one above, claimed)
        assert ext.requests() == []
    finals = [
        p
        for p in web.received("/llm", "REQUEST_STATUS_UPDATE")
        if p["status"] in ("completed", "failed")
    ]
    assert finals == [], finals  # the one above was the only one
    context = await history(web, "web")
    assert [
        m["identity"] for m in context if m.get("requestId") == "b1" and m.get("fromClient")
    ] == ["web"]
    assert sorted(m["identity"] for m in answers_to(context, "b1")) == [
        "SillyTavern-1",
        "SillyTavern-2",
    ]


async def test_requests_without_a_target_spread_over_both_nodes_extensions(cluster: MakeCluster):
    c = await cluster(2)
    one, two = await two_extensions(c)
    web = await c.connect(0, "web")
    await c.settled()
    await routes_to(c, 0, {"SillyTavern-2"})
    count = 6
    chosen: dict[str, str] = {}
    for i in range(count):
        ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": f"s{i}", "message": "x"}))
        [chosen[f"s{i}"]] = ack["targets"]
    per_ext = {
        name: [r for r, e in chosen.items() if e == name]
        for name in ("SillyTavern-1", "SillyTavern-2")
    }
    # the least loaded each time, this node's on a tie: alternating, give or
    # take a load reading that came in between
    assert all(len(ids) >= 2 for ids in per_ext.values()), per_ext

    async def answer(ext: FakeExtension, ids: list[str]) -> None:
        for _ in ids:  # one at a time (extensionConcurrency 1), oldest first
            request = await ext.next_request(
                timeout=10,
                predicate=lambda p: p["requestId"] not in answered,
            )
            answered.add(request["requestId"])
            await ext.stream(
                [f"{ext.identity}:{request['requestId']}"],
                request_id=request["requestId"],
                final=True,
            )

    answered: set[str] = set()
    await asyncio.gather(
        answer(one, per_ext["SillyTavern-1"]), answer(two, per_ext["SillyTavern-2"])
    )

    async def all_completed() -> bool:
        done = {
            p["requestId"]
            for p in web.received("/llm", "REQUEST_STATUS_UPDATE")
            if p["status"] == "completed"
        }
        return done == set(chosen)

    await eventually(all_completed, timeout=10)
    responses = web.received("/llm", "LLM_RESPONSE")
    assert sorted(p["requestId"] for p in responses) == sorted(chosen)  # each once
    for p in responses:
        assert p["data"] == f"{chosen[p['requestId']]}:{p['requestId']}"


async def test_cancelling_a_broadcast_request_stops_every_nodes_extension(cluster: MakeCluster):
    c = await cluster(2)
    one, two = await two_extensions(c)
    boss = await c.connect(0, "boss", ClientKind.MONITOR, ("/", "/rooms"))
    web = await c.connect(1, "web")  # the requester on the other extension's node
    await c.settled()
    ok(await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Broadcast"}))

    async def broadcast_on_node_1() -> bool:
        return (await web.call("/rooms", "GET_CONNECTION_POLICY"))["policy"] == "Broadcast"

    await eventually(broadcast_on_node_1, timeout=5)
    await routes_to(c, 1, {"SillyTavern-1"})
    ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "x1", "message": "go"}))
    assert sorted(ack["targets"]) == ["SillyTavern-1", "SillyTavern-2"], ack
    for ext in (one, two):
        await ext.next_request(timeout=10)
    await one.stream(["partial"], request_id="x1")
    await web.next("/llm", "SERVER_STREAM_DATA", timeout=10)
    cancelled = ok(await web.call("/llm", "CANCEL_REQUEST", {"requestId": "x1"}))
    assert sorted(cancelled["targets"]) == ["SillyTavern-1", "SillyTavern-2"], cancelled
    for ext in (one, two):
        told = await ext.peer.next("/llm", "CANCEL_REQUEST", timeout=5)
        assert told["requestId"] == "x1"
    ends = [
        await web.next("/llm", "SERVER_STREAM_END", lambda p: p["requestId"] == "x1", timeout=5)
        for _ in range(2)
    ]
    assert sorted(e["identity"] for e in ends) == ["SillyTavern-1", "SillyTavern-2"]
    assert {e["status"] for e in ends} == {"cancelled"}
    await asyncio.sleep(1)
    finals = [
        p["status"]
        for p in web.received("/llm", "REQUEST_STATUS_UPDATE")
        if p["status"] in ("completed", "failed", "cancelled")
    ]
    assert finals == ["cancelled"], finals
    assert web.received("/llm", "SERVER_STREAM_END") == []  # one end per extension
    found = ok(await web.call("/llm", "GET_REQUEST", {"requestId": "x1"}))
    assert found["requestStatus"] == "cancelled", found


async def test_balanced_assigns_client_rooms_over_every_nodes_extensions(cluster: MakeCluster):
    """Two clients of node 0, one extension on each node: Balanced gives
    each client its own extension, the second one's on the other node."""
    c = await cluster(2)
    one, two = await two_extensions(c)
    boss = await c.connect(0, "boss", ClientKind.MONITOR, ("/", "/rooms"))
    ok(await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Balanced"}))
    web = await c.connect(0, "web")
    bob = await c.connect(0, "bob")
    await c.settled()
    await routes_to(c, 0, {"SillyTavern-2"})

    async def assigned() -> dict[str, list[str]]:
        view = ok(await boss.call("/rooms", "GET_ASSIGNMENTS_FOR_ROOM", {"roomName": "web"}))
        other = ok(await boss.call("/rooms", "GET_ASSIGNMENTS_FOR_ROOM", {"roomName": "bob"}))
        return {"web": view["assignments"], "bob": other["assignments"]}

    async def balanced() -> bool:
        return sorted(map(tuple, (await assigned()).values())) == [
            ("SillyTavern-1",),
            ("SillyTavern-2",),
        ]

    await eventually(balanced, timeout=10)
    rooms = await assigned()
    for peer, name in ((web, "web"), (bob, "bob")):
        [ext_name] = rooms[name]
        ack = ok(await peer.call("/llm", "LLM_REQUEST", {"requestId": f"{name}-1", "message": "x"}))
        assert ack["targets"] == [ext_name], ack
        ext = one if ext_name == "SillyTavern-1" else two
        request = await ext.next_request(timeout=10)
        assert request["requestId"] == f"{name}-1"
        await ext.stream([f"{ext_name} for {name}"], request_id=f"{name}-1", final=True)
        answer = await peer.next("/llm", "LLM_RESPONSE", timeout=10)
        assert answer["identity"] == ext_name and answer["data"] == f"{ext_name} for {name}"


async def test_a_broadcast_whose_other_node_dies_still_ends_once(cluster: MakeCluster):
    """The holding node's extension answers; the other node dies mid-answer:
    its target counts as failed there, its open answer is closed in the
    history by the survivor, and the request ends once."""
    c = await cluster(2)
    one, two, web = await broadcast_from_node_0(c)
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "d1", "message": "go"}))
    for ext in (one, two):
        await ext.next_request(timeout=10)
    await two.stream(["cut "], request_id="d1")
    url = c.env["NEWAGE_DATABASE_URL"]

    async def saved() -> bool:
        rows = await sql(url, "SELECT text FROM pending_answers WHERE ext = 'SillyTavern-2'")
        return [r["text"] for r in rows] == ["cut "]

    await eventually(saved, timeout=5)
    await asyncio.to_thread(kill, c.nodes[1])
    await one.stream(["whole"], request_id="d1", final=True)

    async def closed() -> bool:
        return len(answers_to(await history(web, "web"), "d1")) == 2

    await eventually(closed, timeout=15, interval=0.2)
    answers = {m["identity"]: m for m in answers_to(await history(web, "web"), "d1")}
    assert answers["SillyTavern-1"]["status"] == "completed"
    assert answers["SillyTavern-2"]["status"] == "failed"
    assert answers["SillyTavern-2"]["data"] == "cut " and answers["SillyTavern-2"]["incomplete"]
    found = ok(await web.call("/llm", "GET_REQUEST", {"requestId": "d1"}))
    assert found["requestStatus"] == "completed", found  # the best outcome of its targets
    await asyncio.sleep(1)
    assert len(answers_to(await history(web, "web"), "d1")) == 2
    completed = [
        p for p in web.received("/llm", "REQUEST_STATUS_UPDATE") if p["status"] == "completed"
    ]
    assert len(completed) == 1, completed
