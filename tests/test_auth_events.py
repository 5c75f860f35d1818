"""Events of /auth and /clients: keys, extensions, client list, trust, arity."""

from __future__ import annotations

import json

import pytest

from newage.protocol.names import ClientKind
from tests.helpers import actors
from tests.helpers.client import Refused, auth
from tests.helpers.wait import settle


async def test_get_key_issues_a_key_on_auth(server, peers):
    await server.trust("SillyTavern-8000", ClientKind.SILLYTAVERN)
    peer = peers()
    await peer.open("/auth", auth("SillyTavern-8000", "getKey", clientType="SillyTavern"))
    assigned = await peer.next("/auth", "CLIENT_KEY_ASSIGNED")
    assert assigned["success"] is True and assigned["status"] == "ok"
    assert assigned["key"] == assigned["Key"] and assigned["clientId"] == "SillyTavern-8000"
    # a key-pending socket may do nothing else
    ack = await peer.call("/auth", "GET_SILLYTAVERN_EXTENSION")
    assert ack["message"] == "Key required."
    await peer.open("/llm", auth("SillyTavern-8000", assigned["key"], clientType="SillyTavern"))


async def test_login_with_password_on_auth(server, peers):
    await server.trust("SillyTavern-1", ClientKind.SILLYTAVERN, password="pw")
    peer = peers()
    await peer.open("/auth", auth("SillyTavern-1", "getKey", clientType="SillyTavern"))
    pending = await peer.next("/auth", "CLIENT_KEY_ASSIGNED")
    assert pending["success"] is False and "LOGIN" in pending["message"]
    wrong = await peer.call("/auth", "LOGIN", {"clientId": "SillyTavern-1", "password": "x"})
    assert wrong["message"] == "Invalid password."
    good = await peer.call("/auth", "LOGIN", {"clientId": "SillyTavern-1", "password": "pw"})
    assert good["status"] == "ok" and good["key"]
    pushed = await peer.next("/auth", "CLIENT_KEY_ASSIGNED")
    assert pushed["key"] == good["key"]


async def test_get_client_key_returns_metadata_only(server, peers):
    key = await server.client("web")
    peer = peers()
    await peer.open("/auth", auth("web", key))
    await peer.open("/clients", auth("web", key))
    own = await peer.call("/auth", "GET_CLIENT_KEY", {"clientId": "web"})
    assert own["status"] == "ok" and own["key"] is None and own["clientId"] == "web"
    assert set(own) >= {"fingerprint", "createdAt", "lastUsedAt"}
    assert key not in json.dumps(own) and "$2" not in json.dumps(own)
    assert (await peer.call("/auth", "GET_CLIENT_KEY"))["clientId"] == "web"  # no data: own key
    other = await peer.call("/auth", "GET_CLIENT_KEY", {"clientId": "admin"})
    assert other["message"] == "You are have no right to get others key."
    assert (await peer.call("/clients", "GET_CLIENT_KEY", {"clientId": "admin"}))[
        "message"
    ] == "Unauthorized"
    admin = await actors.admin(server, peers, namespaces=("/clients",))
    seen = await admin.call("/clients", "GET_CLIENT_KEY", {"clientId": "web"})
    assert seen["fingerprint"] == own["fingerprint"]
    missing = await admin.call("/clients", "GET_CLIENT_KEY", {"clientId": "nobody"})
    assert missing["message"] == "Client key not found."


async def test_get_sillytavern_extension(server, peers):
    key = await server.client("web")
    peer = peers()
    await peer.open("/auth", auth("web", key))
    none = await peer.call("/auth", "GET_SILLYTAVERN_EXTENSION")
    assert none["status"] == "error" and none["extensions"] == []
    ext_key = await server.client("SillyTavern-1", ClientKind.SILLYTAVERN)
    ext = peers()
    await ext.open("/llm", auth("SillyTavern-1", ext_key))
    await peer.open("/", auth("web", key))  # a session makes the client a client room
    found = await peer.call("/auth", "GET_SILLYTAVERN_EXTENSION")
    assert found == {
        "status": "ok",
        "success": True,
        "extensions": ["SillyTavern-1"],
        "allTheSTSocket": ["SillyTavern-1"],
    }


async def test_generate_and_remove_keys(server, peers):
    admin = await actors.admin(server, peers, namespaces=("/clients",))
    await server.trust("bot")
    made = await admin.call("/clients", "GENERATE_CLIENT_KEY", {"targetClientId": "bot"})
    assert made["status"] == "ok" and made["trusted"] is True and len(made["key"]) == 43
    listed = await admin.call("/clients", "GET_ALL_CLIENT_KEYS", {})
    assert listed["keys"]["bot"]["fingerprint"] == made["fingerprint"]
    assert made["key"] not in json.dumps(listed)
    bot = peers()
    await bot.open("/llm", auth("bot", made["key"]))
    other_key = await server.client("other")
    other = peers()
    await other.open("/llm", auth("other", other_key))
    removed = await admin.call("/clients", "REMOVE_CLIENT_KEY", {"targetClientId": "bot"})
    assert removed["disconnected"] == 1
    await bot.next("/llm", "disconnect")
    await settle(other, "/llm")  # a disconnect of other's would have come before this answer
    assert not bot.connected("/llm") and other.connected("/llm")
    again = await admin.call("/clients", "REMOVE_CLIENT_KEY", {"targetClientId": "bot"})
    assert again["status"] == "ok" and again["message"] == "No key for bot."
    missing = await admin.call("/clients", "GENERATE_CLIENT_KEY", {})
    assert missing["status"] == "error" and "targetClientId" in missing["message"]


async def test_trust_management_over_the_wire(server, peers):
    admin = await actors.admin(server, peers, namespaces=("/clients",))
    added = await admin.call(
        "/clients", "ADD_TRUSTED_CLIENT", {"clientId": "game", "clientType": "client"}
    )
    assert added["client"]["isTrust"] is True
    raw = json.loads((server.data_dir / "settings" / "game-settings.json").read_text())
    assert raw["isTrust"] is True and raw["clientType"] == "client"
    bad = await admin.call(
        "/clients", "ADD_TRUSTED_CLIENT", {"clientId": "x", "clientType": "root"}
    )
    assert bad["status"] == "error"
    listing = await admin.call("/clients", "GET_TRUSTED_CLIENTS", {})
    assert {c["clientId"] for c in listing["clients"]} >= {"admin", "game"}
    assert all(
        "password" not in json.dumps(c).lower().replace("haspassword", "")
        for c in listing["clients"]
    )
    key = await server.app.keys.create("game")
    game = peers()
    await game.open("/llm", auth("game", key[0]))
    gone = await admin.call("/clients", "REMOVE_TRUSTED_CLIENT", {"clientId": "game"})
    assert gone["disconnected"] == 1
    await game.next("/llm", "disconnect")
    assert not game.connected("/llm")
    with pytest.raises(Refused, match="not trusted"):
        await peers().open("/llm", auth("game", key[0]))
    assert (
        json.loads((server.data_dir / "settings" / "game-settings.json").read_text())["isTrust"]
        is False
    )


async def test_disconnect_client(server, peers):
    admin = await actors.admin(server, peers, namespaces=("/clients",))
    key = await server.client("web")
    peer = peers()
    await peer.open("/llm", auth("web", key, identity="web-2"))
    ack = await admin.call("/clients", "DISCONNECT_CLIENT", {"identity": "web-2"})
    assert ack["disconnected"] == 1
    await peer.next("/llm", "disconnect")
    assert not peer.connected("/llm")


async def test_client_list_and_aliases(server, peers):
    key = await server.client("web")
    peer = peers()
    await peer.open("/llm", auth("web", key))
    await peer.open("/clients", auth("web", key))
    for event in ("GET_CLIENT_LIST", "getClientList", "UPDATE_CONNECTED_CLIENTS"):
        ack = await peer.call("/clients", event)
        assert ack["status"] == "ok" and ack["success"] is True
        assert [c["id"] for c in ack["clients"]] == ["web"]
    assert await peer.call("/clients", "GET_ROOMS", {}) == ["web"]


async def test_every_handler_answers_once_with_an_object(server, peers):
    admin = await actors.admin(server, peers, namespaces=("/clients",))
    for args in ((), ({},), (None,), ("bare string",), ([1, 2],)):
        ack = await admin.call("/clients", "GET_CLIENT_LIST", *args)
        assert isinstance(ack, dict) and ack["status"] == "ok"
    for args in ((), (None,), (5,), ({"targetClientId": 5},)):
        ack = await admin.call("/clients", "GENERATE_CLIENT_KEY", *args)
        assert isinstance(ack, dict) and ack["status"] == "error"
    # without an ack the event still runs, and errors come back as ERROR
    await admin.emit("/clients", "ADD_TRUSTED_CLIENT", {"clientId": "silent"})
    # handled in arrival order: the next call's answer sees what the emit did
    listing = await admin.call("/clients", "GET_TRUSTED_CLIENTS", {})
    assert "silent" in {c["clientId"] for c in listing["clients"]}
    assert (await server.app.trust.get("silent")).trusted
    await admin.emit("/clients", "NO_SUCH_EVENT", {})
    error = await admin.next("/clients", "ERROR")
    assert error["status"] == "error" and error["event"] == "NO_SUCH_EVENT"
    ack = await admin.call("/clients", "CLIENT_DISCONNECTED", {"reason": "bye"})
    assert ack["status"] == "ok" and admin.connected("/clients")


async def test_deep_and_huge_payloads_are_refused(server, peers):
    admin = await actors.admin(server, peers, namespaces=("/clients",))
    deep: object = {}
    for _ in range(100):
        deep = {"x": deep}
    ack = await admin.call("/clients", "ADD_TRUSTED_CLIENT", deep)
    assert ack["message"].startswith("Payload nested too deeply")
    huge = {"clientId": "x" * 1_200_000}
    ack = await admin.call("/clients", "ADD_TRUSTED_CLIENT", huge)
    assert ack["status"] == "error" and ack["message"].startswith("Payload too large")
    assert await server.app.trust.get("x" * 1_200_000) is None
    assert (await admin.call("/clients", "GET_CLIENT_LIST"))["status"] == "ok"
