"""Several ``newage serve`` processes as one cluster over Redis (docs/cluster.md):
real processes, one shared data directory, real clients on different nodes."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from newage.cluster.delivery import DeliveryStreams
from newage.protocol.names import ClientKind
from tests.helpers.client import Peer, Refused, auth
from tests.helpers.cluster import REDIS_URL, Cluster, MakeCluster
from tests.helpers.fake_extension import FakeExtension
from tests.helpers.proc import ServerProcess, arun_cli
from tests.helpers.wait import eventually


def stream_text(peer: Peer, request_id: str) -> tuple[str, list[dict]]:
    chunks = [
        p for p in peer.received("/llm", "SERVER_STREAM_DATA") if p["requestId"] == request_id
    ]
    return "".join(c["data"] for c in chunks), chunks


def ok(ack: dict) -> dict:
    assert ack["status"] == "ok", ack
    return ack


async def test_room_events_and_membership_across_nodes(cluster: MakeCluster):
    c = await cluster(2)
    boss = await c.connect(0, "admin", ClientKind.MONITOR)
    bob = await c.connect(1, "bob")
    await c.settled()
    ok(await boss.call("/rooms", "CREATE_ROOM", "hall"))
    ok(await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "bob", "roomName": "hall"}))
    # addressed to bob's identity, on both of his namespaces
    for ns in ("/rooms", "/"):
        changed = await bob.next(ns, "MEMBER_ROLE_CHANGED")
        assert changed["roomName"] == "hall" and changed["role"] == "guest"
    # addressed to the room, which bob's sockets on the other node just joined
    system = await bob.next("/llm", "NEW_MESSAGE", lambda p: p["roomName"] == "hall")
    assert system["message"]["data"] == "[System] bob has joined the room as guest."
    ok(
        await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "hall", "mode": "MasterOnly"}
        )
    )
    mode = await bob.next("/rooms", "ROOM_MODE_CHANGED")
    assert mode == {"roomName": "hall", "mode": "MasterOnly", "setter": "admin"}

    # the other node's rooms follow the shared store: membership, mode, history
    async def bob_sees_hall() -> bool:
        return "hall" in ok(await bob.call("/rooms", "GET_ROOMS", {}))["rooms"]

    await eventually(bob_sees_hall)
    members = ok(await bob.call("/rooms", "GET_CLIENTS_IN_ROOM", "hall"))["clients"]
    assert {m["identity"]: m["role"] for m in members} == {"admin": "master", "bob": "guest"}
    ok(await bob.call("/llm", "GET_FULL_CONTEXT", {"roomName": "hall"}))
    context = await bob.next("/llm", "UPDATE_CONTEXT")
    assert "[System] bob has joined the room as guest." in str(context)
    # a change made on bob's node reaches the admin on the first
    ok(await bob.call("/rooms", "REMOVE_CLIENT_FROM_ROOM", {"identity": "bob", "roomName": "hall"}))
    left = await boss.next("/rooms", "MEMBER_LEFT")
    assert left["identity"] == "bob" and left["roomName"] == "hall"

    async def admin_sees_bob_gone() -> bool:
        members = ok(await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", "hall"))["clients"]
        return [m["identity"] for m in members] == ["admin"]

    await eventually(admin_sees_bob_gone)
    # a room deleted on one node is gone on the other
    ok(await boss.call("/rooms", "DELETE_ROOM", "hall"))

    async def bob_has_no_hall() -> bool:
        return "hall" not in ok(await bob.call("/rooms", "GET_ROOMS", {}))["rooms"]

    await eventually(bob_has_no_hall)


async def test_readyz_reports_redis_and_nodes_clean_up_their_keys(cluster: MakeCluster):
    c = await cluster(2)
    async with httpx.AsyncClient(timeout=5) as http:
        for node in c.nodes:
            ready = (await http.get(f"{node.url}/readyz")).json()
            assert ready == {"status": "ok", "checks": {"store": True, "redis": True}}
    views = [(await c.status(i))["cluster"] for i in range(2)]
    assert views[0]["nodes"] == views[1]["nodes"] and len(views[0]["nodes"]) == 2
    assert await c.leftover_keys()
    for peer in c.peers:
        await peer.close()
    for node in c.nodes:
        await asyncio.to_thread(node.stop)
    assert await c.leftover_keys() == []


async def test_extension_on_one_node_streams_to_a_requester_on_another(cluster: MakeCluster):
    c = await cluster(2)
    ext = await c.extension(0)
    web = await c.connect(1, "web")
    await c.settled()
    ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"}))
    assert ack["targets"] == ["SillyTavern-1"] and ack["forwarded"] is True
    request = await ext.next_request()
    assert request["requestId"] == "r1"
    tokens = [f"token {i}; " for i in range(300)]
    await ext.stream(tokens, final=True)
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
    text, chunks = stream_text(web, "r1")
    assert text == "".join(tokens) == end["data"] and end["status"] == "completed"
    assert [ch["seq"] for ch in chunks] == list(range(1, len(chunks) + 1))
    # the requester's own node reads the answer from the shared history
    ok(await web.call("/llm", "GET_FULL_CONTEXT", {"roomName": "web"}))
    assert "".join(tokens) in str(await web.next("/llm", "UPDATE_CONTEXT"))
    # the node that holds the request answers for it
    found = ok(await web.call("/llm", "GET_REQUEST", {"requestId": "r1"}))
    assert found["requestId"] == "r1" and found["requestStatus"] == "completed", found
    late = await web.call("/llm", "CANCEL_REQUEST", {"requestId": "r1"})
    assert late["status"] == "error" and late["message"] == "Request already completed.", late
    # a duplicate id is answered by the node that holds the request
    again = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"}))
    assert again["duplicate"] is True


async def test_twenty_concurrent_cross_node_streams_lose_and_reorder_nothing(
    cluster: MakeCluster,
):
    count = 20
    c = await cluster(2)
    names = [f"SillyTavern-{i}" for i in range(count)]
    for group in range(0, count, 5):  # the CLI, a few at a time
        await asyncio.gather(*(c.key(n, ClientKind.SILLYTAVERN) for n in names[group : group + 5]))
    exts = [await c.extension(0, name) for name in names]
    web = await c.connect(1, "web")
    await c.settled()
    for i, ext in enumerate(exts):
        ack = ok(
            await web.call(
                "/llm",
                "LLM_REQUEST",
                {"requestId": f"q{i}", "message": "go", "target": ext.identity},
            )
        )
        assert ack["targets"] == [ext.identity]
    for ext in exts:
        await ext.next_request()
    texts: dict[str, str] = {}

    async def speak(i: int, ext: FakeExtension) -> None:
        rng = random.Random(i)
        tokens = [f"<{i}:{n}:{'x' * rng.randint(0, 9)}>" for n in range(40)]
        texts[f"q{i}"] = "".join(tokens)
        output_id = str(uuid.uuid4())
        for n, token in enumerate(tokens):
            await ext.token(output_id, token, first=n == 0, final=n == len(tokens) - 1)
            if rng.random() < 0.3:
                await asyncio.sleep(0)

    await asyncio.gather(*(speak(i, ext) for i, ext in enumerate(exts)))
    ends = [await web.next("/llm", "SERVER_STREAM_END", timeout=15) for _ in range(count)]
    assert sorted(e["requestId"] for e in ends) == sorted(f"q{i}" for i in range(count))
    for end in ends:
        relayed, chunks = stream_text(web, end["requestId"])
        assert relayed == texts[end["requestId"]] == end["data"]
        assert [ch["seq"] for ch in chunks] == list(range(1, len(chunks) + 1))


async def test_cancel_reaches_the_node_that_holds_the_request(cluster: MakeCluster):
    c = await cluster(2)
    ext, web = await c.requested("c1", "long")
    await ext.stream(["the start "], request_id="c1")
    await web.next("/llm", "SERVER_STREAM_DATA", timeout=10)
    cancelled = ok(await web.call("/llm", "CANCEL_REQUEST", {"requestId": "c1"}))
    assert cancelled["targets"] == ["SillyTavern-1"]
    told = await ext.peer.next("/llm", "CANCEL_REQUEST", timeout=5)
    assert told["requestId"] == "c1"
    missing = await web.call("/llm", "CANCEL_REQUEST", {"requestId": "nope"})
    assert missing["status"] == "error" and missing["message"] == "Request not found."


async def test_a_killed_node_fails_its_requests_on_the_others_within_15_s(
    cluster: MakeCluster,
):
    c = await cluster(3)
    ext, web = await c.requested("k1")
    await ext.stream(["half an "], request_id="k1")
    await web.next("/llm", "SERVER_STREAM_DATA", timeout=10)
    proc = c.nodes[0].proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait)
    killed = time.monotonic()
    failed = await web.next(
        "/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "failed", timeout=15
    )
    assert failed["requestId"] == "k1" and time.monotonic() - killed < 15
    assert failed["message"] == "The server process handling this request stopped."
    # the survivors drop the dead node; a new request finds no extension
    await c.settled(live=[1, 2])
    refused = await web.call("/llm", "LLM_REQUEST", {"requestId": "k2", "message": "again"})
    assert refused["status"] == "error" and refused["code"] == "unavailable", refused


async def test_admin_on_a_third_node_sees_and_disconnects_clients_of_the_others(
    cluster: MakeCluster,
):
    c = await cluster(3)
    await c.extension(0)
    bob = await c.connect(1, "bob")
    boss = await c.connect(2, "admin", ClientKind.MONITOR, ("/", "/clients"))
    await c.settled()
    nodes = {v: (await c.status(i))["cluster"]["node"] for i, v in enumerate("abc")}

    async def listed() -> dict[str, str | None]:
        items = ok(await boss.call("/clients", "GET_CLIENT_LIST", {}))["clients"]
        return {i["identity"]: i.get("node") for i in items}

    async def everyone() -> bool:
        found = await listed()
        return found.get("SillyTavern-1") == nodes["a"] and found.get("bob") == nodes["b"]

    await eventually(everyone)
    assert (await listed())["admin"] is None  # its own node's entries carry no node
    dropped = ok(await boss.call("/clients", "DISCONNECT_CLIENT", {"identity": "bob"}))
    assert dropped["disconnected"] == 3  # "/", "/llm" and "/rooms"
    await bob.next("/llm", "disconnect", timeout=5)

    async def bob_gone() -> bool:
        return "bob" not in await listed()

    await eventually(bob_gone)


async def test_trust_and_key_changes_by_the_cli_reach_every_node(cluster: MakeCluster):
    c = await cluster(2)
    await c.key("carol", ClientKind.CLIENT)
    # at once on both nodes: one makes the personal room, the other finds it
    first, second = await asyncio.gather(c.connect(0, "carol"), c.connect(1, "carol"))
    revoked = await arun_cli("keys", "revoke", "carol", "--data-dir", str(c.data), env=c.env)
    assert revoked.returncode == 0, revoked.stderr
    for peer in (first, second):
        await peer.next("/", "disconnect", timeout=5)
    refused = Peer(c.nodes[1].url)
    c.peers.append(refused)
    with pytest.raises(Refused):
        await refused.open("/", auth("carol", c.keys["carol"], clientType="web-app"))


async def test_mutes_and_the_connection_policy_hold_on_every_node(cluster: MakeCluster):
    c = await cluster(2)
    boss = await c.connect(0, "boss", ClientKind.MONITOR, ("/", "/llm", "/rooms"))
    web = await c.connect(1, "web")
    await c.settled()
    # a global mute set on node 0 holds for a client of node 1
    muted = await boss.call(
        "/rooms", "MUTE_MEMBER", {"targetIdentity": "web", "roomName": None, "duration": 2}
    )
    ok(muted)
    await web.next("/llm", "MEMBER_MUTED", timeout=5)

    async def refused() -> bool:
        ack = await web.call("/llm", "LLM_REQUEST", {"requestId": uuid.uuid4().hex, "message": "x"})
        return ack["status"] == "error" and "mute" in ack["message"].lower()

    await eventually(refused, timeout=5)
    # its time runs out on both nodes: lifted, and said, once
    lifted = await web.next("/llm", "MEMBER_UNMUTED", timeout=6)
    assert lifted["unmutedBy"] == "System"
    await asyncio.sleep(1.5)  # both nodes' expiry sweeps (1 s) have run since
    assert web.received("/llm", "MEMBER_UNMUTED") == []  # no second notice unclaimed
    # the connection policy set on node 0 is node 1's too
    ok(await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Manual"}))

    async def manual_on_node_1() -> bool:
        return (await web.call("/rooms", "GET_CONNECTION_POLICY"))["policy"] == "Manual"

    await eventually(manual_on_node_1, timeout=5)


async def test_a_requester_resumes_its_stream_on_another_node(cluster: MakeCluster):
    """It lost its node's connection and came back through another node:
    the node that holds the request replays what it missed, then the rest."""
    c = await cluster(3)
    ext = await c.extension(0)
    cases = [("web", 1, 2, "r-fwd"), ("bob", 0, 1, "r-local")]  # forwarded, then local
    for client_id, first_node, second_node, rid in cases:
        first = await c.connect(first_node, client_id)
        await c.settled()
        ack = ok(await first.call("/llm", "LLM_REQUEST", {"requestId": rid, "message": "go"}))
        await ext.next_request(predicate=lambda p, rid=rid: p["requestId"] == rid)
        tokens = [f"{rid} {i}; " for i in range(150)]
        output_id = str(uuid.uuid4())
        for i, token in enumerate(tokens[:50]):
            await ext.token(output_id, token, first=i == 0)

        async def seen_50(peer: Peer = first, rid: str = rid) -> bool:
            return stream_text(peer, rid)[0].endswith(f"{rid} 49; ")

        await eventually(seen_50, timeout=5)
        text, chunks = stream_text(first, rid)
        last_seq = chunks[-1]["seq"]
        await first.close()
        for token in tokens[50:100]:  # while it is away
            await ext.token(output_id, token, first=False)
        second = await c.connect(second_node, client_id)
        await c.settled()
        resumed = ok(
            await second.call(
                "/llm",
                "RESUME_STREAM",
                {"requestId": rid, "afterSeq": last_seq, "epoch": ack["epoch"]},
            )
        )
        assert resumed["replayed"] > 0 and resumed["complete"] is False, resumed
        for j, token in enumerate(tokens[100:]):
            await ext.token(output_id, token, first=False, final=j == 49)
        end = await second.next(
            "/llm", "SERVER_STREAM_END", lambda p, rid=rid: p["requestId"] == rid, timeout=10
        )
        rest, more = stream_text(second, rid)
        assert text + rest == "".join(tokens) == end["data"]
        assert [m["seq"] for m in more] == list(range(last_seq + 1, last_seq + 1 + len(more)))


async def test_an_admin_sees_the_extensions_of_every_node(cluster: MakeCluster):
    c = await cluster(2)
    await c.extension(0)
    boss = await c.connect(1, "boss", ClientKind.MONITOR, ("/", "/llm"))
    await c.settled()
    node0 = (await c.status(0))["cluster"]["node"]
    states = ok(await boss.call("/llm", "GET_EXTENSIONS_STATE"))["extensions"]
    assert [(s["identity"], s.get("node")) for s in states] == [("SillyTavern-1", node0)]
    assert states[0]["available"] is True and states[0]["inFlight"] == 0


async def test_an_admin_on_another_node_reorders_a_queue(cluster: MakeCluster):
    c = await cluster(2)
    ext = await c.extension(0)
    web = await c.connect(1, "web")
    boss = await c.connect(1, "boss", ClientKind.MONITOR, ("/", "/llm"))
    await c.settled()
    for rid in ("r1", "r2", "r3"):
        ok(await web.call("/llm", "LLM_REQUEST", {"requestId": rid, "message": rid}))
    await ext.next_request(predicate=lambda p: p["requestId"] == "r1")
    ack = ok(await boss.call("/llm", "SET_REQUEST_PRIORITY", {"requestId": "r3", "priority": 5}))
    assert ack["positions"] == {"SillyTavern-1": 1}
    missing = await boss.call("/llm", "SET_REQUEST_PRIORITY", {"requestId": "r1", "priority": 1})
    assert missing["code"] == "not_found", missing  # out already: the holder says so
    await ext.stream(["x"], request_id="r1", final=True)
    following = await ext.next_request(predicate=lambda p: p["requestId"] != "r1")
    assert following["requestId"] == "r3"


async def test_a_node_starting_leaves_the_answers_of_the_others_open(cluster: MakeCluster):
    """The answers owed are in the shared store: a node joining must not
    take another node's live ones for a crash's leftovers."""
    c = await cluster(2)
    ext, web = await c.requested("live")
    output_id = str(uuid.uuid4())
    await ext.token(output_id, "before; ", first=True)
    await web.next("/llm", "SERVER_STREAM_DATA")
    newcomer = ServerProcess(c.data, env=c.env)
    c.nodes.append(newcomer)
    await asyncio.to_thread(newcomer.start)
    await ext.token(output_id, "after", first=False, final=True)
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
    assert end["status"] == "completed" and end["data"] == "before; after", end
    statuses = [p["status"] for p in web.received("/llm", "REQUEST_STATUS_UPDATE")]
    assert "failed" not in statuses, statuses
    # and the shared history holds the answer once, not also a crash leftover
    ok(await web.call("/llm", "GET_FULL_CONTEXT", {"roomName": "web"}))
    context = str(await web.next("/llm", "UPDATE_CONTEXT"))
    assert "before; after" in context and "restarted" not in context, context


async def delivery_links(c: Cluster, index: int) -> dict[str, str]:
    """Redis's client ids of node ``index``'s delivery connections, by role."""
    node = (await c.status(index))["cluster"]["node"]
    names = {f"{c.prefix}:dlv:{node}:{role}": role for role in ("send", "read")}
    return {
        names[client["name"]]: client["id"]
        for client in await c.redis.client_list()
        if client.get("name") in names
    }


async def test_lost_delivery_connections_come_back_and_lose_nothing(cluster: MakeCluster):
    c = await cluster(2)
    ext, web = await c.requested("r1")
    output_id = str(uuid.uuid4())
    tokens = [f"token {i}; " for i in range(150)]

    async def speak(part: range) -> None:
        for i in part:
            await ext.token(output_id, tokens[i], first=i == 0, final=i == len(tokens) - 1)

    async def relayed(count: int) -> None:
        expected = "".join(tokens[:count])
        await eventually(lambda: stream_text(web, "r1")[0] == expected, timeout=10)

    await speak(range(50))
    await relayed(50)
    sender, receiver = await delivery_links(c, 0), await delivery_links(c, 1)
    assert set(sender) == set(receiver) == {"send", "read"}
    # the receiver's reader goes: what is sent meanwhile waits in its stream
    assert await c.redis.client_kill_filter(_id=receiver["read"]) == 1
    await speak(range(50, 100))
    await relayed(100)
    # the sender's writer goes: a new one sends what comes next
    assert await c.redis.client_kill_filter(_id=sender["send"]) == 1

    async def back() -> bool:
        links = await delivery_links(c, 0)
        return links.get("send") not in (None, sender["send"])

    await eventually(back, timeout=5)
    await speak(range(100, 150))
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
    text, chunks = stream_text(web, "r1")
    assert text == "".join(tokens) == end["data"]
    assert [ch["seq"] for ch in chunks] == list(range(1, len(chunks) + 1))
    assert (await delivery_links(c, 1))["read"] != receiver["read"]


class Inbox:
    """The receiving end of a ``DeliveryStreams``: what it applied, in order;
    ``"wait"`` items take the slow (awaited) way."""

    def __init__(self) -> None:
        self.items: list[list[Any]] = []

    def now(self, item: list[Any]) -> bool:
        if item[0] == "wait":
            return False
        self.items.append(item)
        return True

    async def later(self, item: list[Any]) -> None:
        await asyncio.sleep(0.05)
        self.items.append(item)


@pytest.fixture
async def streams() -> AsyncIterator[Callable[..., DeliveryStreams]]:
    """Two ``DeliveryStreams`` ends ("a" and "b") on the test Redis, under a
    prefix of their own (deleted at the end)."""
    prefix = f"newage-test-{uuid.uuid4().hex[:12]}"
    tasks: list[asyncio.Task[None]] = []

    def make(node: str, inbox: Inbox, max_bytes: int = 1_000_000) -> DeliveryStreams:
        def key(*parts: str) -> str:
            return ":".join((prefix, *parts))

        return DeliveryStreams(REDIS_URL, key, node, inbox.later, inbox.now, lambda: max_bytes)

    def run(end: DeliveryStreams) -> None:
        tasks.extend([asyncio.create_task(end.write()), asyncio.create_task(end.read())])

    make.run = run  # type: ignore[attr-defined]
    make.prefix = prefix  # type: ignore[attr-defined]
    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    redis = Redis.from_url(REDIS_URL)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_what_waits_for_redis_is_bounded_by_outbound_max_bytes(streams: Any):
    into_a, into_b = Inbox(), Inbox()
    a, b = streams("a", into_a, max_bytes=10_000), streams("b", into_b)
    # a is not connected yet: what it queues waits, up to 10,000 bytes
    for i in range(100):
        a.send(["b"], orjson.dumps(["e", i, "x" * 990]))
    streams.run(a)
    streams.run(b)
    await eventually(lambda: len(into_b.items) >= 10, timeout=5)
    a.send(["b"], orjson.dumps(["e", "after"]))
    await eventually(lambda: into_b.items[-1] == ["e", "after"], timeout=5)
    assert [item[1] for item in into_b.items] == [*range(10), "after"]


async def test_an_item_that_waits_holds_back_the_ones_behind_it(streams: Any):
    into_a, into_b = Inbox(), Inbox()
    a, b = streams("a", into_a), streams("b", into_b)
    streams.run(a)
    streams.run(b)
    for i in range(3):  # three stream entries, one per event-loop turn
        a.send(["b"], orjson.dumps(["e", f"{i}.1"]))
        a.send(["b"], orjson.dumps(["wait", f"{i}.2"]))
        a.send(["b"], orjson.dumps(["e", f"{i}.3"]))
        await asyncio.sleep(0.01)
    await eventually(lambda: len(into_b.items) == 9, timeout=5)
    assert [item[1] for item in into_b.items] == [f"{i}.{j}" for i in range(3) for j in (1, 2, 3)]


async def test_an_unreadable_entry_does_not_stop_the_reader(streams: Any):
    into_a, into_b = Inbox(), Inbox()
    a, b = streams("a", into_a), streams("b", into_b)
    streams.run(a)
    streams.run(b)
    a.send(["b"], orjson.dumps(["e", "first"]))
    await eventually(lambda: len(into_b.items) == 1, timeout=5)
    redis = Redis.from_url(REDIS_URL)
    try:
        stream = f"{streams.prefix}:dlv:b"
        await redis.xadd(stream, {"m": b"not json"})
        await redis.xadd(stream, {"m": b"[1]"})  # an item that is not a list
        await redis.xadd(stream, {"m": b"5"})  # not even a list of items
    finally:
        await redis.aclose()
    a.send(["b"], orjson.dumps(["e", "after"]))
    await eventually(lambda: len(into_b.items) == 2, timeout=5)
    assert into_b.items == [["e", "first"], ["e", "after"]]
