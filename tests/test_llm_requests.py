"""LLM_REQUEST intake, targets and the four modes (real server, real clients)."""

from __future__ import annotations

import pytest

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect, fake_extension, room
from tests.helpers.wait import settle


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


def err(ack, message):
    assert ack["status"] == "error" and ack["message"] == message, ack
    return ack


async def test_immediate_request_is_recorded_forwarded_and_acked(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ack = ok(
        await web.call(
            "/llm",
            "LLM_REQUEST",
            {
                "requestId": "r1",
                "target": "SillyTavern-1",
                "message": "Hello",
                "requestType": "newMessage",
                "custom": {"x": 1},
            },
        )
    )
    assert ack["requestId"] == "r1" and ack["roomName"] == "web" and ack["mode"] == "Immediate"
    assert (
        ack["forwarded"] is True and ack["queued"] is False and ack["targets"] == ["SillyTavern-1"]
    )
    forwarded = await ext.next_request()
    assert forwarded["message"] == "Hello" and forwarded["requestId"] == "r1"
    assert forwarded["target"] == "SillyTavern-1" and forwarded["requestType"] == "newMessage"
    assert forwarded["mode"] == "Immediate" and forwarded["targetRoom"] == "web"
    assert forwarded["requestingIdentity"] == "web"
    current = forwarded["currentRequest"]
    assert current["messageId"] == ack["messageId"] and current["custom"] == {"x": 1}
    assert current["identity"] == "web" and current["fromClient"] is True
    assert forwarded["context"][-1]["messageId"] == ack["messageId"]
    new = await web.next("/llm", "NEW_MESSAGE", lambda p: p["message"].get("requestId") == "r1")
    assert new["roomName"] == "web" and new["message"]["message"] == "Hello"
    assert new["message"]["timestamp"].endswith("Z")


async def test_intake_refusals_change_nothing(server, peers):
    await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "CREATE_ROOM", "closed"))
    err(await web.call("/llm", "LLM_REQUEST", {"message": "x"}), "Invalid LLM request data.")
    err(await web.call("/llm", "LLM_REQUEST", "just text"), "Invalid LLM request data.")
    err(
        await web.call("/llm", "LLM_REQUEST", {"requestId": "a", "target": 5}),
        "Invalid LLM request data.",
    )
    err(
        await web.call(
            "/llm",
            "LLM_REQUEST",
            {"requestId": "a", "targetRoom": "closed", "target": "SillyTavern-1"},
        ),
        "Invalid or unauthorized target room.",
    )
    err(
        await web.call("/llm", "LLM_REQUEST", {"requestId": "a", "targetRoom": "nowhere"}),
        "Invalid or unauthorized target room.",
    )
    err(
        await web.call("/llm", "LLM_REQUEST", {"requestId": "a", "target": "SillyTavern-9"}),
        "Target extension SillyTavern-9 is not connected.",
    )
    assert await server.app.store.count_messages("web") == 0  # nothing recorded
    ok(
        await web.call(
            "/llm", "LLM_REQUEST", {"requestId": "dup", "target": "SillyTavern-1", "message": "a"}
        )
    )
    # a retry of an open id does not generate again: it learns the first one's state
    again = ok(
        await web.call(
            "/llm", "LLM_REQUEST", {"requestId": "dup", "target": "SillyTavern-1", "message": "b"}
        )
    )
    assert again["duplicate"] is True and again["requestStatus"] == "processing", again
    assert await server.app.store.count_messages("web") == 1
    ext_peer = await connect(
        server, peers, "SillyTavern-2", ClientKind.SILLYTAVERN, namespaces=("/llm",)
    )
    err(
        await ext_peer.call("/llm", "LLM_REQUEST", {"requestId": "e"}),
        "Extensions cannot send LLM requests.",
    )
    # a muted member gets both the ERROR event and an error ack
    ok(await boss.call("/rooms", "MUTE_MEMBER", {"targetIdentity": "web", "roomName": "web"}))
    err(
        await web.call("/llm", "LLM_REQUEST", {"requestId": "m", "target": "SillyTavern-1"}),
        "You are muted.",
    )
    error = await web.next("/llm", "ERROR", lambda p: p.get("requestId") == "m")
    assert error["message"] == "You are currently muted and cannot send messages."
    # without an ack the request still runs, and failures arrive as ERROR
    await web.emit("/llm", "LLM_REQUEST", {"requestId": "m2", "target": "SillyTavern-1"})
    assert (await web.next("/llm", "ERROR", lambda p: p.get("requestId") == "m2"))[
        "message"
    ].startswith("You are")


async def test_omitted_target_picks_the_least_busy_extension(server, peers):
    one = await fake_extension(server, peers, "SillyTavern-1")
    two = await fake_extension(server, peers, "SillyTavern-2")
    web = await connect(server, peers, "web")
    first = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "a", "message": "1"}))
    second = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "b", "message": "2"}))
    assert {first["targets"][0], second["targets"][0]} == {"SillyTavern-1", "SillyTavern-2"}
    assert (await one.next_request())["requestId"] in {"a", "b"}
    assert (await two.next_request())["requestId"] in {"a", "b"}


async def test_no_extension_available_is_a_clear_error(server, peers):
    web = await connect(server, peers, "web")
    err(
        await web.call("/llm", "LLM_REQUEST", {"requestId": "a", "message": "1"}),
        "No extension is available for this room.",
    )


async def test_targets_respect_assignments_except_for_admins(server, peers):
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Manual"}))
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    err(
        await web.call("/llm", "LLM_REQUEST", {"requestId": "a", "target": "SillyTavern-1"}),
        "Target extension SillyTavern-1 is not available to this room.",
    )
    err(
        await web.call("/llm", "LLM_REQUEST", {"requestId": "b"}),
        "No extension is available for this room.",
    )
    ok(
        await boss.call(
            "/llm", "LLM_REQUEST", {"requestId": "c", "target": "SillyTavern-1", "message": "hi"}
        )
    )
    assert (await ext.next_request())["requestingIdentity"] == "admin"
    ok(
        await boss.call(
            "/rooms",
            "ASSIGN_EXTENSION_TO_CLIENT",
            {"clientRoom": "web", "extensions": ["SillyTavern-1"]},
        )
    )
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "d"}))


async def test_broadcast_sends_to_every_assigned_extension(server, peers):
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Broadcast"}))
    exts = [await fake_extension(server, peers, f"SillyTavern-{i}") for i in (1, 2, 3)]
    web = await connect(server, peers, "web")
    ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "all", "message": "everyone"}))
    assert sorted(ack["targets"]) == ["SillyTavern-1", "SillyTavern-2", "SillyTavern-3"]
    for ext in exts:
        assert (await ext.next_request())["requestId"] == "all"


async def test_host_submit_queues_guests_and_merges_on_the_masters_submission(server, peers):
    boss = await admin(server, peers)
    ext = await fake_extension(server, peers)
    master = await connect(server, peers, "host")
    guest = await connect(server, peers, "guest")
    await room(boss, "party", {"host": "master", "guest": "guest"}, mode="Default")
    q1 = ok(
        await guest.call(
            "/llm",
            "LLM_REQUEST",
            {"requestId": "g1", "targetRoom": "party", "message": "I want tea"},
        )
    )
    assert q1["queued"] is True and q1["forwarded"] is False
    # a declared role does not make a guest a master
    q2 = ok(
        await guest.call(
            "/llm",
            "LLM_REQUEST",
            {"requestId": "g2", "targetRoom": "party", "message": "  and cake  ", "role": "master"},
        )
    )
    assert q2["queued"] is True
    # after a round trip of its own, the extension has everything the server
    # sent it before: the guests' requests were held, not forwarded
    await settle(ext.peer, "/llm")
    assert ext.requests() == []
    sent = ok(
        await master.call(
            "/llm",
            "LLM_REQUEST",
            {
                "requestId": "h1",
                "targetRoom": "party",
                "message": "Serve them",
                "target": "SillyTavern-1",
            },
        )
    )
    assert sent["forwarded"] is True
    forwarded = await ext.next_request()
    assert forwarded["requestId"] == "h1" and forwarded["mode"] == "HostSubmit"
    merged = forwarded["currentRequest"]
    assert merged["isMerged"] is True and merged["mergedFromCount"] == 3
    assert merged["originalRequestIds"] == ["g1", "g2", "h1"]
    assert forwarded["message"] == "I want tea\n\nand cake\n\nServe them"
    # the guest queue is empty again (h2 goes out once the extension answered h1)
    ok(
        await master.call(
            "/llm", "LLM_REQUEST", {"requestId": "h2", "targetRoom": "party", "message": "more"}
        )
    )
    await ext.stream(["tea"], request_id="h1", final=True)
    assert (await ext.next_request(predicate=lambda p: p["requestId"] == "h2"))["message"] == "more"


async def test_master_only_records_guests_without_forwarding(server, peers):
    boss = await admin(server, peers)
    ext = await fake_extension(server, peers)
    guest = await connect(server, peers, "guest")
    ok(await boss.call("/rooms", "CREATE_ROOM", "stage"))
    ok(await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "guest", "roomName": "stage"}))
    ok(
        await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "stage", "mode": "MasterOnly"}
        )
    )
    ack = ok(
        await guest.call(
            "/llm", "LLM_REQUEST", {"requestId": "g", "targetRoom": "stage", "message": "hi"}
        )
    )
    assert (
        ack["forwarded"] is False
        and ack["message"] == "Request recorded but not forwarded (MasterOnly)."
    )
    assert await server.app.store.count_messages("stage") >= 2  # join notice + the request
    ok(
        await boss.call(
            "/llm", "LLM_REQUEST", {"requestId": "b", "targetRoom": "stage", "message": "go"}
        )
    )
    assert (await ext.next_request())["requestId"] == "b"


async def test_conversational_direct_and_ambient(server, peers):
    boss = await admin(server, peers)
    ext = await fake_extension(server, peers)
    ok(await boss.call("/rooms", "CREATE_ROOM", "cafe"))
    ok(
        await boss.call(
            "/rooms",
            "SET_ROOM_MESSAGE_REQUEST_MODE",
            {"roomName": "cafe", "mode": "Conversational"},
        )
    )
    ambient = ok(
        await boss.call(
            "/llm", "LLM_REQUEST", {"requestId": "a", "targetRoom": "cafe", "message": "nice day"}
        )
    )
    assert ambient["forwarded"] is False
    direct = ok(
        await boss.call(
            "/llm",
            "LLM_REQUEST",
            {
                "requestId": "d",
                "targetRoom": "cafe",
                "message": "@bot hi",
                "target": "SillyTavern-1",
            },
        )
    )
    assert direct["forwarded"] is True
    forwarded = await ext.next_request()
    assert forwarded["type"] == "DIRECT_REQUEST" and forwarded["mode"] == "Conversational"
    assert [m["message"] for m in forwarded["context"] if m.get("fromClient")] == [
        "nice day",
        "@bot hi",
    ]


@pytest.mark.parametrize("server_settings", [dict(extensionContextLimit=5, extensionConcurrency=8)])
async def test_context_sent_to_the_extension_is_bounded(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    for i in range(8):
        ok(
            await web.call(
                "/llm",
                "LLM_REQUEST",
                {"requestId": f"r{i}", "message": f"m{i}", "target": "SillyTavern-1"},
            )
        )
    last = None
    for _ in range(8):
        last = await ext.next_request()
    assert [m["message"] for m in last["context"]] == ["m3", "m4", "m5", "m6", "m7"]


@pytest.mark.parametrize("transport", [["polling"], ["websocket"]])
async def test_requests_work_over_both_transports(server, peers, transport):
    ext = await fake_extension(server, peers, peer_options={"transports": transport})
    web = await connect(server, peers, "web", peer_options={"transports": transport})
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "t", "message": "hi"}))
    assert (await ext.next_request())["requestId"] == "t"
