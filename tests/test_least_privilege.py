"""Least privilege: each principal gets what its role needs and nothing more."""

from __future__ import annotations

import time
from pathlib import Path

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect, extension, fake_extension, room
from tests.helpers.client import Peer, auth
from tests.helpers.proc import ServerProcess, arun_cli
from tests.helpers.wait import eventually


async def test_a_demoted_admin_loses_its_open_sockets_within_a_second(server, peers):
    boss = await admin(server, peers, namespaces=("/clients",))
    victim_key = await server.client("ops", ClientKind.MONITOR)
    ops = peers()
    for namespace in ("/clients", "/rooms"):
        await ops.open(namespace, auth("ops", victim_key, clientType="monitor"))
    assert (await ops.call("/clients", "GET_TRUSTED_CLIENTS"))["status"] == "ok"

    started = time.monotonic()
    ack = await boss.call(
        "/clients", "ADD_TRUSTED_CLIENT", {"clientId": "ops", "clientType": "client"}
    )
    assert ack["status"] == "ok" and ack["disconnected"] == 2
    await ops.next("/clients", "disconnect", timeout=1)
    await ops.next("/rooms", "disconnect", timeout=1)
    assert time.monotonic() - started < 1
    # it comes back as what it now is: a plain client
    again = peers()
    await again.open("/clients", auth("ops", victim_key))
    denied = await again.call("/clients", "GET_TRUSTED_CLIENTS")
    assert denied["status"] == "error" and denied["message"] == "Unauthorized"


async def test_a_demotion_by_the_cli_reaches_open_sockets(tmp_path: Path):
    data = tmp_path / "d"
    server = ServerProcess(data).start()
    peer = Peer(server.url)
    try:
        assert (
            await arun_cli("trust", "add", "ops", "--type", "monitor", "--data-dir", str(data))
        ).returncode == 0
        key = (await arun_cli("keys", "create", "ops", "--data-dir", str(data))).stdout.strip()
        await peer.open("/clients", auth("ops", key, clientType="monitor"))
        demoted = await arun_cli("trust", "add", "ops", "--type", "client", "--data-dir", str(data))
        assert demoted.returncode == 0
        started = time.monotonic()
        await eventually(lambda: not peer.connected("/clients"), timeout=5)
        # the server polls every 100 ms; a second with room for a busy machine
        assert time.monotonic() - started < 1.5
    finally:
        await peer.close()
        server.stop()


async def test_extensions_manage_only_their_own_key(server, peers):
    await server.client("web-app")
    ext = await extension(server, peers, namespaces=("/clients", "/auth"))
    for event in ("GENERATE_CLIENT_KEY", "REMOVE_CLIENT_KEY"):
        ack = await ext.call("/clients", event, {"targetClientId": "web-app"})
        assert ack["status"] == "error" and ack["message"] == "Unauthorized", event
    other = await ext.call("/auth", "GET_CLIENT_KEY", {"clientId": "web-app"})
    assert other["status"] == "error"
    listed = await ext.call("/clients", "GET_ALL_CLIENT_KEYS", {})
    assert listed["status"] == "ok" and set(listed["keys"]) == {"SillyTavern-1"}
    own = await ext.call("/clients", "GENERATE_CLIENT_KEY", {"targetClientId": "SillyTavern-1"})
    assert own["status"] == "ok" and len(own["key"]) == 43
    # an additional key: the socket that asked (and its key) still work
    fresh = peers()
    await fresh.open(
        "/llm", auth("SillyTavern-1", server.keys["SillyTavern-1"], clientType="SillyTavern")
    )
    await fresh.open("/rooms", auth("SillyTavern-1", own["key"], clientType="SillyTavern"))
    # the web app's key is untouched
    assert await server.app.store.get_key("web-app") is not None


async def test_member_lists_are_for_members(server, peers):
    boss = await admin(server, peers, namespaces=("/rooms",))
    inside = await connect(server, peers, "inside", namespaces=("/rooms",))
    outside = await connect(server, peers, "outside", namespaces=("/rooms",))
    await room(boss, "hall", {"inside": "guest"})
    listed = await inside.call("/rooms", "GET_CLIENTS_IN_ROOM", {"roomName": "hall"})
    assert listed["status"] == "ok" and {c["identity"] for c in listed["clients"]} >= {"inside"}
    for name in ("hall", "monitor-room"):
        denied = await outside.call("/rooms", "GET_CLIENTS_IN_ROOM", {"roomName": name})
        assert denied["status"] == "error" and "member" in denied["message"], name
        assert "clients" not in denied
    assert (await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", {"roomName": "monitor-room"}))[
        "status"
    ] == "ok"


async def test_client_set_server_fields_are_not_stored(server, peers):
    await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    forged = {
        "source": "server",
        "type": "THINK_RESPONSE",
        "requester": "admin",
        "status": "completed",
        "role": "master",
        "incomplete": False,
    }
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "q1", "message": "hi", **forged})
    assert ack["status"] == "ok"
    news = await web.next("/llm", "NEW_MESSAGE", lambda p: p["message"].get("requestId") == "q1")
    stored = await server.app.store.get_messages("web", [ack["messageId"]])
    for body in (news["message"], stored[0].body):
        assert not set(forged) & set(body), body
        assert body["identity"] == "web" and body["fromClient"] is True
    # nor can an edit add them afterwards
    edit = await web.call(
        "/llm",
        "EDIT_MESSAGE",
        {"roomName": "web", "messageId": ack["messageId"], "updatedFields": forged},
    )
    assert edit["status"] == "error"
    stored = await server.app.store.get_messages("web", [ack["messageId"]])
    assert not set(forged) & set(stored[0].body)
