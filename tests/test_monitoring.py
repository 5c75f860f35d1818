"""The monitor's server side: request states and traces, the trends series
and the audit trail, with real clients and the simulated extension."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from tests.helpers.actors import admin, connect, fake_extension, room
from tests.helpers.client import Refused, auth
from tests.helpers.wait import eventually

FAST = dict(metricsSampleMs=200, streamCoalesceMs=0)


async def audit(boss, **filters):
    ack = await boss.call("/debug", "GET_AUDIT_LOG", filters)
    assert ack["status"] == "ok", ack
    return ack["entries"]


@pytest.mark.parametrize("server_settings", [FAST])
async def test_request_states_timings_trace_and_pushes(server, peers):
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers, namespaces=("/", "/llm", "/debug"))
    web = await connect(server, peers, "web")
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r-ok", "message": "Hi"})
    assert ack["status"] == "ok", ack
    await ext.next_request()
    await ext.stream(["Hel", "lo"], request_id="r-ok", final=True)
    done = await boss.next("/llm", "REQUEST_STATE", lambda p: p["state"] == "completed")
    assert done["requestId"] == "r-ok" and done["tokens"] == 2, done
    assert done["targets"] == {"SillyTavern-1": "completed"}
    assert done["firstTokenMs"] is not None and done["durationMs"] >= done["firstTokenMs"]
    states = [p["state"] for p in boss.received("/llm", "REQUEST_STATE")]
    assert states[:3] == ["pending", "processing", "streaming"], states

    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r-bad", "message": "Hi"})
    await ext.next_request(predicate=lambda p: p["requestId"] == "r-bad")
    await ext.error("the model is down")
    failed = await boss.next("/llm", "REQUEST_STATE", lambda p: p["state"] == "failed")
    assert failed["requestId"] == "r-bad" and "model is down" in failed["reason"], failed

    listed = await boss.call("/debug", "GET_REQUESTS", {"state": "done"})
    assert [r["requestId"] for r in listed["requests"]] == ["r-bad", "r-ok"], listed
    only_failed = await boss.call("/debug", "GET_REQUESTS", {"state": "failed", "search": "r-"})
    assert only_failed["total"] == 1
    one = await boss.call("/debug", "GET_REQUESTS", {"requestId": "r-ok"})
    events = [e["event"] for e in one["request"]["trace"]]
    assert events[:3] == ["received", "forwarded", "first output"], events
    assert "answer ended" in events and events[-1] == "completed"
    missing = await boss.call("/debug", "GET_REQUESTS", {"requestId": "nope"})
    assert missing["status"] == "error" and missing["code"] == "not_found"
    bad = await boss.call("/debug", "GET_REQUESTS", {"limit": 100000})
    assert bad["status"] == "error" and bad["code"] == "bad_request"
    # a failed request is a warning in the audit trail
    entries = await audit(boss, action="request", level="warn")
    assert [(e["action"], e["target"]) for e in entries] == [("request.failed", "r-bad")]
    # plain clients see none of it
    denied = await web.call("/llm", "GET_REQUESTS", {})
    assert denied["status"] == "error"


@pytest.mark.parametrize("server_settings", [FAST])
async def test_held_requests_show_queued_and_not_forwarded(server, peers):
    await fake_extension(server, peers)
    boss = await admin(server, peers, namespaces=("/", "/llm", "/rooms", "/debug"))
    await connect(server, peers, "guest-1")
    await room(boss, "held", {"guest-1": "guest"}, mode="HostSubmit")
    guest = await connect(server, peers, "guest-1")
    ack = await guest.call(
        "/llm", "LLM_REQUEST", {"requestId": "q1", "message": "x", "targetRoom": "held"}
    )
    assert ack["queued"] is True, ack
    queued = await boss.next(
        "/llm", "REQUEST_STATE", lambda p: p["requestId"] == "q1" and p["state"] == "queued"
    )
    assert queued["mode"] == "HostSubmit"
    listed = await boss.call("/debug", "GET_REQUESTS", {"state": "open"})
    assert [r["requestId"] for r in listed["requests"]] == ["q1"]
    # the master submits: the held request goes out merged into the master's
    ack = await boss.call(
        "/llm", "LLM_REQUEST", {"requestId": "m1", "message": "go", "targetRoom": "held"}
    )
    assert ack["forwarded"] is True, ack
    gone = await boss.next(
        "/llm", "REQUEST_STATE", lambda p: p["requestId"] == "q1" and p["state"] == "submitted"
    )
    assert gone["finishedAt"]
    one = await boss.call("/debug", "GET_REQUESTS", {"requestId": "q1"})
    assert one["request"]["trace"][-1] == {
        **one["request"]["trace"][-1],
        "event": "submitted",
        "mergedInto": "m1",
    }
    listed = await boss.call("/debug", "GET_REQUESTS", {"state": "held"})
    assert listed["total"] == 0


@pytest.mark.parametrize("server_settings", [FAST])
async def test_series_counts_real_traffic(server, peers):
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers, namespaces=("/debug",))
    web = await connect(server, peers, "web")
    for i in range(3):
        await web.call("/llm", "LLM_REQUEST", {"requestId": f"s{i}", "message": "Hi"})
        await ext.next_request(predicate=lambda p, i=i: p["requestId"] == f"s{i}")
        await ext.stream(["a", "b", "c"], request_id=f"s{i}", final=True)

    async def counted() -> bool:
        ack = await boss.call("/debug", "GET_METRICS_SERIES", {})
        series = ack["series"]
        return (
            ack["totals"] == {"requests": 3, "tokens": 9, "failures": 0}
            and sum(series["tokens"]) > 0
            and len(series["t"]) >= 2
        )

    await eventually(counted, timeout=10)
    ack = await boss.call("/debug", "GET_METRICS_SERIES", {})
    series = ack["series"]
    assert len({len(v) for v in series.values()}) == 1 and len(series["t"]) >= 2
    assert max(series["connections"]) >= 4
    assert any(v is not None and v >= 0 for v in series["firstTokenMs"])
    (listed,) = ack["extensions"]
    assert listed["identity"] == "SillyTavern-1" and listed["served"] == 3
    assert listed["queueLength"] == 0 and listed["lastAnswerAt"]
    later = await boss.call("/debug", "GET_METRICS_SERIES", {"since": series["t"][-1]})
    assert all(t > series["t"][-1] for t in later["series"]["t"])


async def test_audit_records_admin_actions_and_refused_logins(server, peers):
    boss = await admin(server, peers, namespaces=("/", "/clients", "/rooms", "/debug"))
    await boss.call("/clients", "ADD_TRUSTED_CLIENT", {"clientId": "tool-a"})
    await boss.call("/clients", "GENERATE_CLIENT_KEY", {"targetClientId": "tool-a"})
    await boss.call("/clients", "REMOVE_CLIENT_KEY", {"targetClientId": "tool-a"})
    await boss.call("/rooms", "CREATE_ROOM", {"roomName": "audited"})
    await boss.call(
        "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "audited", "mode": "MasterOnly"}
    )
    await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Balanced"})
    await boss.call("/debug", "TOGGLE_DEBUG_MODE", {})
    await boss.call("/debug", "TOGGLE_DEBUG_MODE", {})
    await boss.call("/clients", "REMOVE_TRUSTED_CLIENT", {"clientId": "tool-a"})
    intruder = peers()
    with pytest.raises(Refused):
        await intruder.open("/llm", auth("tool-a", "wrong-key"))

    entries = await audit(boss)
    seen = [(e["actor"], e["action"], e["target"]) for e in reversed(entries)]
    expected = [
        ("admin", "trust.add", "tool-a"),
        ("admin", "key.create", "tool-a"),
        ("admin", "key.revoke", "tool-a"),
        ("admin", "room.create", "audited"),
        ("admin", "room.mode", "audited"),
        ("admin", "policy.set", "Balanced"),
        ("admin", "settings.change", "debugMode"),
        ("admin", "settings.change", "debugMode"),
        ("admin", "trust.remove", "tool-a"),
    ]
    assert [s for s in seen if s[1] != "login.refused"][-len(expected) :] == expected, seen
    refused = await audit(boss, action="login", level="warn")
    assert refused and refused[0]["target"] == "'tool-a'" and refused[0]["actor"] == "127.0.0.1"
    assert refused[0]["details"]["reason"]
    # filters and paging
    trust = await audit(boss, action="trust")
    assert {e["action"] for e in trust} == {"trust.add", "trust.remove"}
    page = await boss.call("/debug", "GET_AUDIT_LOG", {"limit": 2})
    older = await boss.call(
        "/debug", "GET_AUDIT_LOG", {"limit": 2, "beforeId": page["entries"][-1]["id"]}
    )
    assert page["total"] == older["total"] >= 10
    assert older["entries"][0]["id"] < page["entries"][-1]["id"]
    found = await audit(boss, search="audited")
    assert {e["action"] for e in found} == {"room.create", "room.mode"}


@pytest.mark.parametrize("server_settings", [dict(auditMaxEntries=100)])
async def test_audit_survives_a_restart_and_is_bounded(server, peers):
    boss = await admin(server, peers, namespaces=("/clients", "/debug"))
    for i in range(120):
        await boss.call("/clients", "ADD_TRUSTED_CLIENT", {"clientId": f"bulk-{i}"})
    await server.app.live.apply({"logLevel": "warn"})  # type: ignore[union-attr]  # no handler: the server
    await server.app.audit.flush()  # type: ignore[union-attr]
    assert await server.app.audit.prune() >= 20  # type: ignore[union-attr]
    ack = await boss.call("/debug", "GET_AUDIT_LOG", {"limit": 200})
    assert ack["total"] == 100
    newest = ack["entries"][0]
    assert (newest["actor"], newest["action"], newest["target"]) == (
        "server",
        "settings.change",
        "logLevel",
    )
    await server.stop()
    server.app = None
    await server.start()
    boss = await admin(server, peers, namespaces=("/debug",))
    ack = await boss.call("/debug", "GET_AUDIT_LOG", {"action": "trust"})
    assert ack["total"] >= 90


@pytest.mark.parametrize("server_settings", [dict(personalRoomCleanupDays=1)])
async def test_personal_rooms_of_gone_clients_are_cleaned_up(server, peers):
    boss = await admin(server, peers, namespaces=("/debug",))
    gone = await connect(server, peers, "web-gone")
    await connect(server, peers, "web-here")
    await gone.close()
    rooms = server.app.rooms  # type: ignore[union-attr]
    await eventually(lambda: not server.app.presence.is_present("web-gone"))  # type: ignore[union-attr]
    for name in ("web-gone", "web-here"):
        await server.app.store.clear_messages(name, ["request", "system", "response"])  # type: ignore[union-attr]
        rooms.rooms[name].created_at = "2020-01-01T00:00:00.000Z"  # long ago
    await server.app._cleanup_personal_rooms()  # type: ignore[union-attr]
    assert "web-gone" not in rooms.rooms and "web-here" in rooms.rooms
    entries = (await boss.call("/debug", "GET_AUDIT_LOG", {"action": "room"}))["entries"]
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("server", "room.cleanup", "web-gone")
    ]


@pytest.mark.parametrize("server_settings", [dict(authFailureLimit=2)])
async def test_lockouts_and_refused_origins_are_warnings(server, peers):
    boss = await admin(server, peers, namespaces=("/debug",))
    await server.client("bob")
    attacker = peers()
    for _ in range(2):
        with pytest.raises(Refused, match="Invalid key"):
            await attacker.open("/rooms", auth("bob", "bad"))
    with pytest.raises(Refused, match="Too many failed attempts"):
        await attacker.open("/rooms", auth("bob", "bad"))
    async with httpx.AsyncClient() as http:
        refused = await http.get(server.url + "/", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    entries = await audit(boss, level="warn")
    seen = [(e["action"], e["target"], e["actor"]) for e in entries]
    assert ("login.locked", "'bob'", "127.0.0.1") in seen, seen
    assert ("origin.refused", "'https://evil.example'", "127.0.0.1") in seen, seen
    assert sum(1 for s in seen if s[0] == "login.refused") == 2


@pytest.mark.parametrize("server_settings", [FAST])
async def test_debug_logging_traces_each_request_step(server, peers, caplog):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    with caplog.at_level(logging.DEBUG, logger="newage"):
        await web.call("/llm", "LLM_REQUEST", {"requestId": "dbg-1", "message": "Hi"})
        await ext.next_request()
        await ext.stream(["a"], request_id="dbg-1", final=True)
        await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    steps = [r.getMessage() for r in caplog.records if "request dbg-1 (web)" in r.getMessage()]
    assert any(": received" in s for s in steps) and any(": forwarded" in s for s in steps)
    assert any(": completed" in s for s in steps), steps


async def test_api_logins_and_rooms_are_audited(server, peers):
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers, namespaces=("/debug",))
    key = await server.client("bot")
    body = {"model": "SillyTavern-1", "messages": [{"role": "user", "content": "Hi"}]}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        refused = await http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": "Bearer bot:wrong"}
        )
        assert refused.status_code == 401
        call = asyncio.create_task(
            http.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer bot:{key}"}
            )
        )
        request = await ext.next_request()
        await ext.message("Hello", request_id=request["requestId"])
        assert (await call).status_code == 200
    entries = await audit(boss, search="/v1")
    assert [(e["action"], e["actor"]) for e in entries] == [("login.refused", "127.0.0.1")]
    made = await audit(boss, action="room.create")
    assert [(e["actor"], e["target"]) for e in made] == [("bot", "api:bot")], made
