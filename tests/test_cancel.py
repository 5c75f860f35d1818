"""CANCEL_REQUEST on /llm and the extension's explicit end (stopped), with
the simulated extension."""

from __future__ import annotations

import pytest

from tests.helpers.actors import admin, connect, fake_extension, room
from tests.helpers.wait import eventually, settle


def live_text(peer, request_id):
    return "".join(
        p["data"]
        for p in peer.received("/llm", "SERVER_STREAM_DATA")
        if p["requestId"] == request_id
    )


async def ask(web, request_id, text="Hi", **kw):
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": request_id, "message": text, **kw})
    assert ack["status"] == "ok", ack
    return ack


async def started(server, peers):
    """An extension working on request r1 of requester web."""
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    await ask(web, "r1")
    await ext.next_request()
    return ext, web


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_cancel_while_streaming_ends_at_once_and_keeps_late_chunks(server, peers):
    ext, web = await started(server, peers)
    output_id = await ext.stream(["Hello", " there"], request_id="r1")
    await eventually(lambda: live_text(web, "r1") == "Hello there")

    ack = await web.call("/llm", "CANCEL_REQUEST", {"requestId": "r1"})
    assert ack["status"] == "ok" and ack["targets"] == ["SillyTavern-1"], ack
    status = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] != "processing")
    assert status["status"] == "cancelled" and status["requestId"] == "r1"
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["status"] == "cancelled" and end["data"] == "Hello there"
    assert end["outputId"] == output_id
    cancel = await ext.peer.next("/llm", "CANCEL_REQUEST")
    assert cancel["requestId"] == "r1" and cancel["targetRoom"] == "web"

    # what the extension still sends is kept in history, marked, never live
    await ext.stream([" and more"], request_id="r1", output_id=output_id, final=True)
    kept = await web.next("/llm", "NEW_MESSAGE", lambda p: p["message"].get("cancelled"), timeout=5)
    assert kept["message"]["data"] == "Hello there and more"
    assert kept["message"]["status"] == "cancelled" and kept["message"]["incomplete"] is True
    await settle(web, "/llm")
    assert live_text(web, "r1") == "Hello there"
    assert not web.received("/llm", "SERVER_STREAM_END")  # the one claimed above
    assert not web.received("/llm", "LLM_RESPONSE")
    statuses = [p["status"] for p in web.received("/llm", "REQUEST_STATUS_UPDATE")]
    assert statuses == ["processing"]  # before the cancel; nothing after it

    again = await web.call("/llm", "CANCEL_REQUEST", {"requestId": "r1"})
    assert again["status"] == "error" and again["code"] == "conflict"
    assert again["message"] == "Request already cancelled."

    # the extension is free for the next request
    await ask(web, "r2")
    await ext.next_request(predicate=lambda p: p["requestId"] == "r2")
    await ext.stream(["next"], request_id="r2", final=True)
    done = await web.next(
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == "r2" and p["status"] == "completed",
    )
    assert done["requestId"] == "r2"


async def test_cancel_of_a_queued_request_takes_it_out_of_the_queue(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    await ask(web, "r1")
    await ask(web, "r2")
    # r2 waits in the server's queue: the extension never hears of it
    ack = await web.call("/llm", "CANCEL_REQUEST", {"requestId": "r2"})
    assert ack["status"] == "ok", ack
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["requestId"] == "r2" and end["status"] == "cancelled" and end["data"] == ""
    # an answer without an id is r1's (the head); after it nothing is left
    await ext.stream(["one"], final=True)
    done = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    assert done["requestId"] == "r1"
    info = await ext.peer.call("/llm", "message", {"type": 0, "data": "stray"})
    assert info["message"] == "No request in flight."
    assert [r["requestId"] for r in ext.requests()] == ["r1"]
    assert not ext.peer.received("/llm", "CANCEL_REQUEST")


async def test_who_may_cancel(server, peers):
    await fake_extension(server, peers)
    boss = await admin(server, peers)
    web = await connect(server, peers, "web")
    mod = await connect(server, peers, "mod")
    other = await connect(server, peers, "other")
    await room(boss, "hall", {"web": "guest", "mod": "manager", "other": "guest"})
    for rid in ("a", "b", "c"):
        await ask(web, rid, targetRoom="hall")

    refused = await other.call("/llm", "CANCEL_REQUEST", {"requestId": "a"})
    assert refused["status"] == "error" and refused["message"] == "Unauthorized", refused
    assert (await mod.call("/llm", "CANCEL_REQUEST", {"requestId": "a"}))["status"] == "ok"
    assert (await boss.call("/llm", "CANCEL_REQUEST", {"requestId": "b"}))["status"] == "ok"
    assert (await web.call("/llm", "CANCEL_REQUEST", {"requestId": "c"}))["status"] == "ok"

    ack = await boss.call(
        "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "hall", "mode": "MasterOnly"}
    )
    assert ack["status"] == "ok", ack
    await ask(web, "held", targetRoom="hall")
    held = await web.call("/llm", "CANCEL_REQUEST", {"requestId": "held"})
    assert held["code"] == "conflict" and held["requestStatus"] == "not_forwarded", held
    assert held["message"] == "Request was not forwarded; nothing to cancel."

    missing = await web.call("/llm", "CANCEL_REQUEST", {"requestId": "nope"})
    assert missing["code"] == "not_found" and missing["message"] == "Request not found."
    bad = await web.call("/llm", "CANCEL_REQUEST", {"requestId": 5})
    assert bad["status"] == "error" and bad["message"].startswith("Invalid CANCEL_REQUEST")


async def test_server_side_cancel_without_a_principal(server, peers):
    ext, web = await started(server, peers)
    assert server.app is not None
    ack = await server.app.chat.cancel("r1", None)
    assert ack["status"] == "ok"
    assert (await ext.peer.next("/llm", "CANCEL_REQUEST"))["requestId"] == "r1"
    status = await web.next("/llm", "REQUEST_STATUS_UPDATE")
    assert status["status"] == "cancelled"


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_stopped_by_the_user_is_visible_to_the_requester(server, peers):
    ext, web = await started(server, peers)
    await ext.stream(["Half", " an answer"], request_id="r1", final=True, status="stopped")
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["status"] == "stopped" and end["data"] == "Half an answer"
    status = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] != "processing")
    assert status["status"] == "stopped"
    new = await web.next("/llm", "NEW_MESSAGE", lambda p: p["message"].get("isResponse"))
    assert new["message"]["status"] == "stopped" and new["message"]["incomplete"] is True

    # non-stream: stopped before anything came
    await ask(web, "r2")
    await ext.message("", request_id="r2", status="stopped")
    status = await web.next(
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == "r2" and p["status"] != "processing",
    )
    assert status["status"] == "stopped"

    bad = await ext.peer.call(
        "/llm", "CLIENT_STREAM_END", {"type": 3, "streamId": "s", "final": True, "status": "x"}
    )
    assert bad["status"] == "error" and "status" in bad["message"]
