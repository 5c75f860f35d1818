"""Conversational rooms: background thinking and post-unmute thinking."""

from __future__ import annotations

import pytest

from tests.helpers.actors import admin, fake_extension, room
from tests.helpers.wait import eventually, settle

FAST = {
    "conversationalCheckInterval": 50,
    "conversationalThinkProbability": 1,
    "conversationalThinkIntervalMin": 600_000,
    "conversationalThinkIntervalMax": 600_000,
    "postUnmuteThinkDelay": 50,
}


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


async def set_mode(boss, mode):
    ok(
        await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "cafe", "mode": mode}
        )
    )


@pytest.mark.parametrize("server_settings", [FAST])
async def test_thinking_and_post_unmute(server, peers):
    boss = await admin(server, peers)
    ext = await fake_extension(server, peers)
    await room(boss, "cafe", {"SillyTavern-1": "guest"})  # the mode only once it is muted
    # muted extensions are not asked
    ok(
        await boss.call(
            "/rooms", "MUTE_MEMBER", {"targetIdentity": "SillyTavern-1", "roomName": "cafe"}
        )
    )
    await set_mode(boss, "Conversational")
    ok(
        await boss.call(
            "/llm",
            "LLM_REQUEST",
            {"requestId": "a", "targetRoom": "cafe", "message": "lovely weather"},
        )
    )
    # the loop visits the room while the extension is muted: once it has set
    # the room's ten-minute timer it has decided, and a round trip of the
    # extension's own brings anything it was sent
    await eventually(lambda: "cafe" in server.app.thinker.timers)
    await settle(ext.peer, "/llm")
    assert [r for r in ext.requests() if r.get("type") == "THINK_REQUEST"] == []
    # unmuting makes the room think at once, with the post-unmute instruction
    await boss.call(
        "/rooms", "UNMUTE_MEMBER", {"targetIdentity": "SillyTavern-1", "roomName": "cafe"}
    )
    think = await ext.next_request(predicate=lambda p: p.get("type") == "THINK_REQUEST")
    assert think["requestId"].startswith("think_") and think["mode"] == "Conversational"
    assert (
        think["message"].startswith("You were just unmuted.")
        and think["instruction"] == think["message"]
    )
    assert think["targetRoom"] == "cafe" and think["target"] == "SillyTavern-1"
    assert any(m.get("message") == "lovely weather" for m in think["context"])
    await ext.stream(["Indeed ", "it is."], final=True)
    response = await boss.next("/llm", "LLM_RESPONSE", lambda p: p["roomName"] == "cafe")
    assert response["data"] == "Indeed it is." and response["requestId"] == think["requestId"]
    recorded = await boss.next("/llm", "NEW_MESSAGE", lambda p: p["message"].get("isResponse"))
    assert recorded["message"]["type"] == "THINK_RESPONSE"
    assert [
        u
        for u in boss.received("/llm", "REQUEST_STATUS_UPDATE")
        if u["requestId"] == think["requestId"]
    ] == []
    # the background loop also thinks, once per interval (ten minutes here,
    # set while muted); leaving Conversational and coming back starts afresh
    await set_mode(boss, "Immediate")
    await set_mode(boss, "Conversational")
    loop_think = await ext.next_request(
        predicate=lambda p: p.get("type") == "THINK_REQUEST", timeout=3
    )
    assert loop_think["message"] == server.app.live.current.conversational_instruction
    assert loop_think["requestId"] != think["requestId"] and loop_think["targetRoom"] == "cafe"
    await ext.stream(["Quiet ", "here."], final=True)
    answered = await boss.next(
        "/llm", "LLM_RESPONSE", lambda p: p["requestId"] == loop_think["requestId"]
    )
    assert answered["data"] == "Quiet here."
    # out of Conversational the room forwards requests as they come, and the
    # next thing the extension is asked is that request, not a think
    await set_mode(boss, "Immediate")
    forwarded = ok(
        await boss.call(
            "/llm",
            "LLM_REQUEST",
            {"requestId": "b", "targetRoom": "cafe", "message": "hello", "target": "SillyTavern-1"},
        )
    )
    assert forwarded["forwarded"] is True
    after = await ext.next_request()
    assert after["requestId"] == "b" and after["mode"] == "Immediate"
    assert after.get("type") != "THINK_REQUEST"
