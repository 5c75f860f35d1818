"""The server-side queue per extension, priorities, and idempotent request ids."""

from __future__ import annotations

import pytest

from tests.helpers.actors import admin, connect, fake_extension
from tests.helpers.wait import eventually, settle


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


async def ask(peer, request_id, **kw):
    return ok(
        await peer.call("/llm", "LLM_REQUEST", {"requestId": request_id, "message": "Hi", **kw})
    )


def statuses(peer, request_id):
    return [
        (p["status"], p.get("position"))
        for p in peer.received("/llm", "REQUEST_STATUS_UPDATE")
        if p["requestId"] == request_id
    ]


def done(rid):
    return lambda p: p["requestId"] == rid and p["status"] == "completed"


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_three_requesters_wait_in_order_with_positions(server, peers):
    ext = await fake_extension(server, peers)
    a, b, c = [await connect(server, peers, name) for name in ("a", "b", "c")]
    assert (await ask(a, "ra"))["position"] == 0
    assert (await ask(b, "rb"))["position"] == 1
    assert (await ask(c, "rc"))["position"] == 2
    # c's updates are read at the end, unclaimed
    await eventually(lambda: statuses(c, "rc") == [("queued", 2)])
    assert statuses(b, "rb") == [("queued", 1)]

    # one at a time: the extension has only ra
    assert (await ext.next_request())["requestId"] == "ra"
    await ext.stream(["one"], request_id="ra", final=True)
    await a.next("/llm", "REQUEST_STATUS_UPDATE", done("ra"))
    forwarded = await b.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "forwarded")
    assert forwarded["target"] == "SillyTavern-1"
    await ext.next_request(predicate=lambda p: p["requestId"] == "rb")
    await eventually(lambda: ("queued", 1) in statuses(c, "rc"))
    await ext.stream(["two"], request_id="rb", final=True)
    await b.next("/llm", "REQUEST_STATUS_UPDATE", done("rb"))
    await ext.next_request(predicate=lambda p: p["requestId"] == "rc")
    await ext.stream(["three"], request_id="rc", final=True)
    await eventually(lambda: ("completed", None) in statuses(c, "rc"))
    assert statuses(c, "rc") == [
        ("queued", 2),
        ("queued", 1),
        ("forwarded", None),
        ("processing", None),
        ("completed", None),
    ]
    assert ext.requests() == []  # each claimed above, in order; nothing else came


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_a_queued_request_gets_the_context_of_when_it_goes_out(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    await ask(web, "r1")
    await ask(web, "r2")
    await ext.next_request()
    await ext.stream(["first answer"], request_id="r1", final=True)
    r2 = await ext.next_request(predicate=lambda p: p["requestId"] == "r2")
    assert any(m.get("isResponse") and m.get("data") == "first answer" for m in r2["context"])


async def test_cancel_while_queued_never_reaches_the_extension(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    other = await connect(server, peers, "other")
    await ask(web, "r1")
    await ask(web, "r2")
    await ask(other, "r3")
    await other.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["position"] == 2)
    ok(await web.call("/llm", "CANCEL_REQUEST", {"requestId": "r2"}))
    # r3 moves up at once
    await other.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["position"] == 1)
    await ext.stream(["x"], request_id="r1", final=True)
    await ext.next_request(predicate=lambda p: p["requestId"] == "r3")
    await settle(ext.peer, "/llm")
    assert [r["requestId"] for r in ext.requests()] == ["r1"]  # r3 was claimed above
    assert not ext.peer.received("/llm", "CANCEL_REQUEST")


async def test_admins_raise_a_priority(server, peers):
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers)
    web = await connect(server, peers, "web")
    for rid in ("r1", "r2", "r3"):
        await ask(web, rid)
    refused = await web.call("/llm", "SET_REQUEST_PRIORITY", {"requestId": "r3", "priority": 5})
    assert refused["status"] == "error" and refused["code"] == "forbidden", refused
    ack = ok(await boss.call("/llm", "SET_REQUEST_PRIORITY", {"requestId": "r3", "priority": 5}))
    assert ack["positions"] == {"SillyTavern-1": 1}
    r2 = await web.next(
        "/llm", "REQUEST_STATUS_UPDATE", lambda p: p["requestId"] == "r2" and p["position"] == 2
    )
    assert r2["status"] == "queued"
    missing = await boss.call("/llm", "SET_REQUEST_PRIORITY", {"requestId": "r1", "priority": 1})
    assert missing["code"] == "not_found", missing
    bad = await boss.call("/llm", "SET_REQUEST_PRIORITY", {"requestId": "r2", "priority": "hi"})
    assert bad["status"] == "error", bad
    await ext.next_request()
    await ext.stream(["x"], request_id="r1", final=True)
    assert (await ext.next_request(predicate=lambda p: p["requestId"] != "r1"))["requestId"] == "r3"


@pytest.mark.parametrize("server_settings", [dict(extensionConcurrency=2)])
async def test_extension_concurrency_lets_more_out(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    assert [(await ask(web, r))["position"] for r in ("r1", "r2", "r3")] == [0, 0, 1]
    await ext.next_request(predicate=lambda p: p["requestId"] == "r2")


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_a_duplicate_request_id_never_generates_again(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    thief = await connect(server, peers, "thief")
    first = await ask(web, "r1")
    again = await ask(web, "r1", message="other text")
    assert again["duplicate"] is True and again["requestStatus"] == "processing"
    assert again["messageId"] == first["messageId"]
    stolen = await thief.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "x"})
    assert stolen["status"] == "error" and stolen["message"] == "Duplicate requestId."
    await ext.next_request()
    await ext.stream(["The", " answer"], request_id="r1", final=True)
    await web.next("/llm", "REQUEST_STATUS_UPDATE", done("r1"))
    late = await ask(web, "r1")
    assert late["duplicate"] is True and late["requestStatus"] == "completed"
    assert late["answers"] == [{"identity": "SillyTavern-1", "text": "The answer"}]
    fetched = ok(await web.call("/llm", "GET_REQUEST", {"requestId": "r1"}))
    assert fetched["answers"][0]["text"] == "The answer" and "duplicate" not in fetched
    hidden = await thief.call("/llm", "GET_REQUEST", {"requestId": "r1"})
    assert hidden["code"] == "not_found", hidden
    await settle(ext.peer, "/llm")
    assert ext.requests() == []  # the one claimed above; the retries sent nothing
    assert await server.app.store.count_messages("web") == 2  # one request, one answer
