from __future__ import annotations

import pytest

from newage.protocol.names import ClientKind
from tests.helpers.client import Refused, auth


async def test_connect_with_key(server, peers):
    key = await server.client("alice")
    peer = peers()
    await peer.open("/llm", auth("alice", key))
    await peer.open("/rooms", auth("alice", key))
    # the key opened a session (its personal room) that /rooms serves
    rooms = await peer.call("/rooms", "GET_ROOMS", {})
    assert rooms["status"] == "ok" and rooms["rooms"] == ["alice"], rooms
    with pytest.raises(Refused) as err:
        await peer.open("/debug", auth("alice", key))
    assert err.value.message == "Unauthorized"
    assert peer.connected("/llm") and peer.connected("/rooms")


async def test_admin_lists_keys(server, peers):
    key = await server.client("admin", ClientKind.MONITOR)
    peer = peers()
    await peer.open("/clients", auth("admin", key, clientType="monitor"))
    ack = await peer.call("/clients", "GET_ALL_CLIENT_KEYS", {})
    assert ack["status"] == "ok"
    assert "admin" in ack["keys"]
