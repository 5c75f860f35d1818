"""Slow consumers: a client that stops reading is closed once its outbound
backlog is past the budget (bytes or age), its TCP connection dropped at
once; everyone else in the room keeps receiving."""

from __future__ import annotations

import pytest

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect, room
from tests.helpers.client import auth
from tests.helpers.stalled import StalledReader
from tests.helpers.wait import eventually, settle

TEXT = "x" * 20_000


async def busy_room(server, peers):
    stall_key = await server.client("stall", ClientKind.CLIENT)
    stalled = StalledReader(server.port)
    await stalled.open("/llm", auth("stall", stall_key))
    writer = await connect(server, peers, "writer", namespaces=("/llm", "/rooms"))
    watcher = await connect(server, peers, "watcher", namespaces=("/llm",))
    boss = await admin(server, peers)
    members = {"writer": "guest", "stall": "guest", "watcher": "guest"}
    await room(boss, "busy", members, mode="Conversational")
    return stalled, writer, watcher


async def say(writer, n: int) -> None:
    ack = await writer.call(
        "/llm", "LLM_REQUEST", {"requestId": f"m{n}", "message": TEXT, "targetRoom": "busy"}
    )
    assert ack["status"] == "ok", ack


async def until_dropped(stalled: StalledReader, writer, most: int) -> int:
    """Messages said before the server dropped the stalled reader."""
    sent = 0
    # the kernel's buffers take a few MB first; the budget bounds what follows
    while stalled.established() and sent < most:
        await say(writer, sent)
        sent += 1
    assert not stalled.established(), f"the stalled reader was never dropped ({sent} said)"
    return sent


FAST_STORE = {"sqliteSynchronous": "NORMAL"}


@pytest.mark.parametrize("server_settings", [{"outboundMaxBytes": 500_000, **FAST_STORE}])
async def test_a_reader_that_stops_is_dropped_past_the_byte_budget(server, peers):
    stalled, writer, watcher = await busy_room(server, peers)
    sent = await until_dropped(stalled, writer, 300)
    assert server.app is not None
    await eventually(lambda: "stall" not in server.app.presence.sessions)
    # the others are untouched and got every message
    await say(writer, sent)
    await settle(watcher, "/llm")
    got = [
        e["message"]["requestId"]
        for e in watcher.received("/llm", "NEW_MESSAGE")
        if "requestId" in e["message"]
    ]
    assert got == [f"m{n}" for n in range(sent + 1)]
    assert writer.connected("/llm") and watcher.connected("/llm")
    stalled.close()


@pytest.mark.parametrize(
    "server_settings", [{"outboundMaxBytes": 100_000_000, "outboundMaxAge": 1000, **FAST_STORE}]
)
async def test_a_reader_that_stops_is_dropped_past_the_age_budget(server, peers):
    stalled, writer, watcher = await busy_room(server, peers)
    await until_dropped(stalled, writer, 1000)
    assert writer.connected("/llm") and watcher.connected("/llm")
    stalled.close()
