"""Websocket upgrades that go wrong midway leave the polling session working.

A raw client opens an Engine.IO session over long-polling, then attempts
the upgrade and breaks it at each step of ``LeanSocket._websocket_handler``:
the websocket closes before the probe or after it, the probe is not a PING,
the second packet is not UPGRADE. Each time the session must go on over
polling (a namespace connects through it), and a proper upgrade afterwards
must still succeed.
"""

from __future__ import annotations

import json
import time

import pytest
import websockets

from newage.realtime import internals
from newage.realtime.engine import LeanSocket
from tests.helpers.client import auth
from tests.helpers.rawhttp import PollingSession
from tests.helpers.wait import eventually


async def connects_over_polling(session: PollingSession, key: str) -> None:
    """A Socket.IO CONNECT sent and answered over polling (a NOOP or two from
    the upgrade attempt may come first)."""
    await session.send("40/llm," + json.dumps(auth("web", key)))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        packets = await session.poll()
        if any(p.startswith("40/llm,") and '"sid"' in p for p in packets):
            return
        assert all(p in ("6", "2") for p in packets), packets  # NOOP, PING
    raise AssertionError("the session no longer answers over polling")


async def upgrades(session: PollingSession) -> None:
    async with websockets.connect(session.upgrade_url, compression=None) as ws:
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        await ws.send("5")
        await ws.send("40/rooms,{}")
        answer = await ws.recv()
        while answer in ("6", "2"):
            answer = await ws.recv()
        assert answer.startswith("44/rooms,"), answer  # refused (no key), over the websocket


async def probe_then(ws: websockets.ClientConnection) -> None:
    await ws.send("2probe")
    assert await ws.recv() == "3probe"


@pytest.mark.parametrize(
    "breaks",
    ["close_before_probe", "not_a_probe", "close_after_probe", "not_upgrade"],
)
async def test_a_failed_upgrade_leaves_the_polling_session_working(server, breaks):
    key = await server.client("web")
    session = PollingSession(server.port)
    try:
        sid = await session.open()
        sock = internals.engine_socket(server.app.sio, sid)
        assert type(sock) is LeanSocket
        async with websockets.connect(session.upgrade_url, compression=None) as ws:
            if breaks == "not_a_probe":
                await ws.send("4hello")
            elif breaks == "close_after_probe":
                await probe_then(ws)
            elif breaks == "not_upgrade":
                await probe_then(ws)
                await ws.send("4hello")
            if breaks in ("not_a_probe", "not_upgrade"):
                # the server gives the upgrade up and ends the websocket
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
        await eventually(lambda: not sock.upgrading)
        assert not sock.upgraded and not sock.closed
        assert internals.engine_socket(server.app.sio, sid) is sock
        await connects_over_polling(session, key)
        await upgrades(session)
        assert sock.upgraded and not sock.upgrading
    finally:
        await session.close()
