"""/debug: debug mode, server status and READ_LOG over a real socket."""

from __future__ import annotations

import json
import re

import pytest

from newage import logs
from newage.protocol.names import ClientKind
from tests.helpers.actors import admin as connect_admin
from tests.helpers.actors import connect
from tests.helpers.client import Refused, auth

REMOTE = {"X-Forwarded-For": "203.0.113.7"}  # uvicorn's proxy headers, from loopback
PAGE = "Invalid page number"
SIZE = "Invalid page size (must be between 1 and 100)"


@pytest.fixture(autouse=True)
def restore_log_level():
    before = logs.current_level()
    yield
    logs.set_level(before)


async def debug_peer(server, peers, client_id="admin", kind=ClientKind.MONITOR, **kw):
    return await connect(server, peers, client_id, kind, namespaces=("/debug",), **kw)


async def save_settings(peer, changes):
    """The settings file's legacy path, written through an admin's FUNCTION_CALL."""
    ack = await peer.call(
        "/function_call",
        "FUNCTION_CALL",
        {
            "requestId": "save",
            "functionName": "saveJsonToFile",
            "target": "server",
            "args": ["./settings/server_settings.json", changes],
        },
    )
    assert ack["result"] == {"success": True}, ack


def entry(i: int, level: str = "info") -> str:
    return f"2026-03-01 10:{i // 60 % 60:02d}:{i % 60:02d} - {level} - event {i}"


async def test_toggle_broadcasts_switches_the_level_and_persists(server, peers):
    admin = await debug_peer(server, peers)
    ext = await debug_peer(server, peers, "admin-2", ClientKind.MONITOR)
    settings_file = server.data_dir / "settings" / "server_settings.json"

    on = await admin.call("/debug", "TOGGLE_DEBUG_MODE")
    assert on == {"status": "ok", "success": True, "debugMode": True}
    assert await ext.next("/debug", "DEBUG_MODE_CHANGED") == {"debugMode": True}
    assert await admin.next("/debug", "DEBUG_MODE_CHANGED") == {"debugMode": True}
    assert logs.current_level() == "debug"
    assert json.loads(settings_file.read_text())["debugMode"] is True
    status = await ext.call("/debug", "SERVER_STATUS")
    assert status["serverStatus"]["debugMode"] is True

    off = await ext.call("/debug", "TOGGLE_DEBUG_MODE", {})
    assert off["debugMode"] is False
    assert await admin.next("/debug", "DEBUG_MODE_CHANGED") == {"debugMode": False}
    assert logs.current_level() == "info"
    assert json.loads(settings_file.read_text())["debugMode"] is False

    await admin.call("/debug", "TOGGLE_DEBUG_MODE")
    await server.restart()
    assert server.app.live.current.debug_mode is True


async def test_debug_mode_set_through_the_settings_file_switches_the_level(server, peers):
    admin = await connect_admin(server, peers, namespaces=("/function_call", "/debug"))
    settings_file = server.data_dir / "settings" / "server_settings.json"
    await save_settings(admin, {"logLevel": "warn"})
    assert logs.current_level() == "warn"
    await save_settings(admin, {"debugMode": True})
    assert logs.current_level() == "debug"
    assert await admin.next("/debug", "DEBUG_MODE_CHANGED") == {"debugMode": True}
    assert (await admin.call("/debug", "SERVER_STATUS"))["serverStatus"]["logLevel"] == "debug"
    await save_settings(admin, {"debugMode": False})
    assert logs.current_level() == "warn"
    saved = json.loads(settings_file.read_text())
    assert saved["debugMode"] is False and saved["logLevel"] == "warn"


async def test_server_status(server, peers):
    admin = await debug_peer(server, peers)
    await connect(server, peers, "web", namespaces=("/", "/llm"))
    ack = await admin.call("/debug", "SERVER_STATUS")
    assert ack["status"] == "ok" and ack["success"] is True
    status = ack["serverStatus"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", status["startTime"])
    assert status["serverPort"] == 4000 and status["serverAddress"] == "http://localhost"
    assert status["networkSafe"] is True and status["debugMode"] is False
    assert status["version"] == server.app.info.version
    assert 0 <= status["uptimeSeconds"] < 60
    assert status["connections"]["/debug"] == 1
    assert status["connections"]["/"] == 1 and status["connections"]["/llm"] == 1
    assert status["sessions"] == 1 and status["rooms"] >= 1
    assert status["requestsInFlight"] == 0 and status["streamsInFlight"] == 0
    assert status["memory"]["rssBytes"] > 10_000_000
    assert status["memory"]["peakRssBytes"] >= status["memory"]["rssBytes"]
    assert status["logLevel"] in {"info", "debug", "warn", "error"}


async def test_only_admins_and_only_locally(server, peers):
    key = await server.client("alice")
    with pytest.raises(Refused, match="Unauthorized"):
        await peers().open("/debug", auth("alice", key))
    with pytest.raises(Refused, match="loopback"):
        await debug_peer(server, peers, peer_options={"headers": REMOTE})
    # logs and server internals are not the extension's business (least privilege)
    with pytest.raises(Refused, match="Unauthorized"):
        await debug_peer(server, peers, "SillyTavern-2", ClientKind.SILLYTAVERN)
    await debug_peer(server, peers)


@pytest.mark.parametrize("server_settings", [{"networkSafe": False}])
async def test_events_are_refused_once_network_safe_is_switched_on(server, peers):
    remote = await debug_peer(server, peers, peer_options={"headers": REMOTE})
    assert (await remote.call("/debug", "SERVER_STATUS"))["status"] == "ok"
    local = await connect_admin(server, peers, namespaces=("/function_call", "/debug"))
    await save_settings(local, {"networkSafe": True})
    for event in ("SERVER_STATUS", "TOGGLE_DEBUG_MODE", "READ_LOG"):
        ack = await remote.call("/debug", event, {"filename": "combined.log"})
        assert ack["status"] == "error" and "loopback" in ack["message"], event
    status = (await local.call("/debug", "SERVER_STATUS"))["serverStatus"]
    assert status["networkSafe"] is True and status["debugMode"] is False


async def test_read_log_validation_order_and_messages(server, peers):
    admin = await debug_peer(server, peers)
    logs_dir = server.data_dir / "logs"
    (logs_dir / "combined.log").write_text(
        "".join(entry(i) + "\n" for i in range(30)), encoding="utf-8"
    )

    async def read(data):
        return await admin.call("/debug", "READ_LOG", data)

    cases = [
        ({}, "Invalid filename"),
        ({"filename": "../newage.db", "level": "all"}, "Invalid filename"),
        ({"filename": "combined.log.1"}, "Invalid filename"),
        ({"filename": ["combined.log"]}, "Invalid filename"),
        ({"filename": "combined.log", "level": "verbose", "page": -1}, "Invalid level Options"),
        ({"filename": "combined.log", "level": "ERROR"}, "Invalid level Options"),
        ({"filename": "combined.log", "level": "all", "page": -1, "pageSize": 500}, PAGE),
        ({"filename": "combined.log", "level": "all", "page": "-3"}, PAGE),
        ({"filename": "combined.log", "level": "all", "pageSize": 101}, SIZE),
        ({"filename": "combined.log", "level": "all", "pageSize": "-1"}, SIZE),
    ]
    for data, message in cases:
        ack = await read(data)
        assert ack["status"] == "error" and ack["success"] is False, data
        assert ack["message"] == message and ack["code"] == "bad_request", data
    # parseInt semantics: 0, garbage and absence become the defaults
    for page, size in [(0, 0), ("x", None), (None, "abc"), ("1.9", "10px")]:
        ack = await read(
            {"filename": "combined.log", "level": "all", "page": page, "pageSize": size}
        )
        assert (ack["page"], ack["pageSize"]) == (1, 10), (page, size)
        assert ack["lines"] == [entry(i) for i in range(20, 30)]
    bad = await read("combined.log")
    assert bad["message"] == "Invalid READ_LOG payload: payload: expected an object."
    missing = await read({"filename": "warn.log", "level": "all"})
    assert missing["status"] == "error" and missing["message"] == "Log file not found: warn.log"
    # a missing level means all
    assert (await read({"filename": "combined.log"}))["level"] == "all"


async def test_read_log_pages_and_filters_a_large_log(server, peers):
    ext = await debug_peer(server, peers)
    levels = ("info", "warn", "error", "debug")
    rows = []
    for i in range(40_000):  # about 2.5 MB
        rows.append(entry(i, levels[i % 4]) + " " + "y" * 20)
        if i % 4 == 2:
            rows.append("  detail line of the error")
    (server.data_dir / "logs" / "combined.log").write_text("\n".join(rows) + "\n")

    ack = await ext.call(
        "/debug",
        "READ_LOG",
        {"filename": "combined.log", "level": "error", "page": 1, "pageSize": 100},
    )
    assert ack["status"] == "ok" and ack["success"] is True
    assert ack["total"] == 10_000 and ack["filename"] == "combined.log"
    assert (ack["page"], ack["pageSize"], ack["level"]) == (1, 100, "error")
    assert len(ack["lines"]) == 100
    last = ack["lines"][-1].split("\n")
    assert last == [entry(39_998, "error") + " " + "y" * 20, "  detail line of the error"]

    older = await ext.call(
        "/debug",
        "READ_LOG",
        {"filename": "combined.log", "level": "all", "page": "3", "pageSize": "7"},
    )
    assert older["total"] == 40_000 and (older["page"], older["pageSize"]) == (3, 7)
    numbers = [int(re.search(r"event (\d+)", text).group(1)) for text in older["lines"]]
    assert numbers == list(range(40_000 - 21, 40_000 - 14))
    beyond = await ext.call(
        "/debug",
        "READ_LOG",
        {"filename": "combined.log", "level": "debug", "page": 101, "pageSize": 100},
    )
    assert beyond["lines"] == [] and beyond["total"] == 10_000


async def test_read_log_search_pages_the_matches(server, peers):
    ext = await debug_peer(server, peers)
    rows = [
        entry(i, ("info", "error")[i % 2]) + (" NEEDLE" if i % 10 == 3 else "") for i in range(500)
    ]
    (server.data_dir / "logs" / "combined.log").write_text("\n".join(rows) + "\n")
    ask = {"filename": "combined.log", "level": "error", "pageSize": 20, "search": "needle"}
    ack = await ext.call("/debug", "READ_LOG", {**ask, "page": 1})
    assert ack["status"] == "ok" and ack["total"] == 50 and ack["search"] == "needle", ack
    numbers = [int(re.search(r"event (\d+)", t).group(1)) for t in ack["lines"]]
    assert numbers == list(range(303, 500, 10))  # the newest 20 matches, in file order
    last = await ext.call("/debug", "READ_LOG", {**ask, "page": 3})
    assert len(last["lines"]) == 10 and "event 3 " in last["lines"][0] + " "
    bad = await ext.call("/debug", "READ_LOG", {**ask, "search": "x" * 201})
    assert bad["status"] == "error" and bad["code"] == "bad_request"
