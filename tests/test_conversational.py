"""Conversational rooms: background thinking and post-unmute thinking."""

from __future__ import annotations

import pytest

from tests.helpers.actors import admin, fake_extension

FAST = {
    "conversationalCheckInterval": 50,
    "conversationalThinkProbability": 1,
    "conversationalThinkIntervalMin": 600_000,
    "conversationalThinkIntervalMax": 600_000,
    "postUnmuteThinkDelay": 50,
}


@pytest.mark.parametrize("server_settings", [FAST])
async def test_thinking_and_post_unmute(server, peers):
    boss = await admin(server, peers)
    ext = await fake_extension(server, peers)
    await boss.call("/rooms", "CREATE_ROOM", "cafe")
    await boss.call(
        "/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "SillyTavern-1", "roomName": "cafe"}
    )
    # muted extensions are not asked
    await boss.call(
        "/rooms", "MUTE_MEMBER", {"targetIdentity": "SillyTavern-1", "roomName": "cafe"}
    )
    await boss.call(
        "/rooms",
        "SET_ROOM_MESSAGE_REQUEST_MODE",
        {"roomName": "cafe", "mode": "Conversational"},
    )
    await boss.call(
        "/llm",
        "LLM_REQUEST",
        {"requestId": "a", "targetRoom": "cafe", "message": "lovely weather"},
    )
    await boss.quiet(0.3)
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
    # the background loop also thinks (once per interval: the timer was just set)
    server.app.thinker.timers.clear()
    loop_think = await ext.next_request(
        predicate=lambda p: p.get("type") == "THINK_REQUEST", timeout=3
    )
    assert loop_think["message"] == server.app.live.current.conversational_instruction
    # leaving Conversational stops it
    await boss.call(
        "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "cafe", "mode": "Immediate"}
    )
    assert "cafe" not in server.app.thinker.timers
