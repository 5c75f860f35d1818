"""Authentication on every namespace, and what a refusal leaves alone."""

from __future__ import annotations

import pytest

from newage.domain.identity.principal import is_loopback
from newage.protocol.names import ClientKind, Namespace
from tests.helpers.actors import admin, connect
from tests.helpers.client import Refused, auth

ALL = [ns.value for ns in Namespace]
REMOTE = {"X-Forwarded-For": "203.0.113.7"}  # uvicorn's proxy headers, from loopback


async def alice(server, peers, namespaces=("/llm",)):
    """alice connected on ``namespaces``, and her key."""
    peer = await connect(server, peers, "alice", namespaces=namespaces)
    return peer, server.keys["alice"]


async def refused(peer, namespace, data) -> str:
    with pytest.raises(Refused) as err:
        await peer.open(namespace, data)
    assert err.value.detail["status"] == "error"
    assert err.value.detail["message"] == err.value.message
    return err.value.message


@pytest.mark.parametrize("namespace", ALL)
async def test_every_namespace_requires_a_valid_key(server, peers, namespace):
    peer, key = await alice(server, peers)
    if namespace == "/llm":
        namespace = "/rooms"
    await server.client("bob")
    assert await refused(peer, namespace, auth("bob", "wrong")) == "Invalid key."
    assert await refused(peer, namespace, auth("mallory", key)) == "Client is not trusted."
    assert await refused(peer, namespace, {"key": key}) == "clientId is required."
    assert await refused(peer, namespace, None) == "clientId is required."
    assert await refused(peer, namespace, auth("bob", None)) == "Invalid key."
    assert await refused(peer, namespace, {**auth("alice"), "key": {"k": 1}}) == "Invalid key."
    assert await refused(peer, namespace, {**auth("alice"), "key": 42}) == "Invalid key."
    # the refusals closed nothing else on the same connection
    assert peer.connected("/llm")
    ack = await peer.call("/llm", "UNKNOWN_EVENT", {})
    assert ack["status"] == "error"


async def test_spoofed_privileged_types_are_refused(server, peers):
    peer, key = await alice(server, peers)
    for declared in ("monitor", "SillyTavern", "extension"):
        message = await refused(peer, "/rooms", auth("alice", key, clientType=declared))
        assert message == f"clientType '{declared}' is not allowed for this client."
    admin_key = await server.client("admin", ClientKind.MONITOR)
    assert "not allowed" in await refused(
        peer, "/rooms", auth("admin", admin_key, clientType="web-app")
    )
    assert peer.connected("/llm")


@pytest.mark.parametrize(
    "namespace", ["/", "/llm", "/rooms", "/clients", "/function_call", "/debug"]
)
async def test_get_key_is_refused_outside_key_namespaces(server, peers, namespace):
    # a live socket of the same extension beside the attempt (not on its namespace)
    opened = ("/rooms",) if namespace == "/llm" else ("/llm",)
    peer = await connect(server, peers, "SillyTavern-9", ClientKind.SILLYTAVERN, namespaces=opened)
    message = await refused(
        peer, namespace, auth("SillyTavern-9", "getKey", clientType="SillyTavern")
    )
    assert message == "Invalid key."
    assert peer.connected(opened[0])


async def test_get_key_on_auth_is_only_for_sillytavern_clients(server, peers):
    peer, _ = await alice(server, peers)
    assert (
        await refused(peer, "/auth", auth("alice", "getKey"))
        == "Only SillyTavern clients may request a key."
    )


async def test_revoked_key_is_refused_and_live_sockets_closed(server, peers):
    peer, key = await alice(server, peers, namespaces=("/llm", "/rooms"))
    boss = await admin(server, peers, namespaces=("/clients",))
    ack = await boss.call("/clients", "REMOVE_CLIENT_KEY", {"targetClientId": "alice"})
    assert ack == {"status": "ok", "success": True, "disconnected": 2}
    await peer.next("/llm", "disconnect")
    await peer.next("/rooms", "disconnect")
    assert not peer.connected("/llm") and not peer.connected("/rooms")
    again = peers()
    assert await refused(again, "/llm", auth("alice", key)) == "Invalid key."
    assert boss.connected("/clients")


async def test_passwords(server, peers):
    await server.trust("SillyTavern-5000", ClientKind.SILLYTAVERN, password="pw")
    peer, _ = await alice(server, peers)
    bad = auth("SillyTavern-5000", "getKey", clientType="SillyTavern", password="nope")
    assert await refused(peer, "/sillytavern", bad) == "Invalid password."
    # without a password in the handshake the socket may only identify, with one
    await peer.open("/sillytavern", auth("SillyTavern-5000", "getKey", clientType="SillyTavern"))
    wrong = await peer.call(
        "/sillytavern", "IDENTIFY_SILLYTAVERN", {"clientId": "SillyTavern-5000", "password": "x"}
    )
    assert wrong["status"] == "error" and wrong["message"] == "Invalid password."
    missing = await peer.call(
        "/sillytavern", "IDENTIFY_SILLYTAVERN", {"clientId": "SillyTavern-5000"}
    )
    assert missing["message"] == "Password required."
    good = await peer.call(
        "/sillytavern", "IDENTIFY_SILLYTAVERN", {"clientId": "SillyTavern-5000", "password": "pw"}
    )
    assert good["status"] == "ok"
    ext = peers()
    await ext.open("/llm", auth("SillyTavern-5000", good["key"], clientType="SillyTavern"))
    # the key-less settings read needs the password too
    assert (
        await refused(peers(), "/function_call", auth("SillyTavern-5000", clientType="SillyTavern"))
        == "Password required."
    )
    assert peer.connected("/llm")


async def test_identify_requires_matching_client_id(server, peers):
    await server.trust("SillyTavern-1", ClientKind.SILLYTAVERN)
    peer = peers()
    await peer.open("/sillytavern", auth("SillyTavern-1", "getKey", clientType="SillyTavern"))
    ack = await peer.call("/sillytavern", "IDENTIFY_SILLYTAVERN", {"clientId": "SillyTavern-2"})
    assert ack["message"] == "clientId mismatch."
    other = await peer.call("/sillytavern", "CLIENT_SETTINGS", {})
    assert other["status"] == "error" and other["message"] == "Key required."


async def test_sensitive_operations_need_an_admin(server, peers):
    peer, key = await alice(server, peers, namespaces=("/llm", "/clients"))
    for event, data in [
        ("GET_ALL_CLIENT_KEYS", {}),
        ("GENERATE_CLIENT_KEY", {"targetClientId": "x"}),
        ("REMOVE_CLIENT_KEY", {"targetClientId": "x"}),
        ("GET_TRUSTED_CLIENTS", {}),
        ("ADD_TRUSTED_CLIENT", {"clientId": "x"}),
        ("REMOVE_TRUSTED_CLIENT", {"clientId": "x"}),
        ("DISCONNECT_CLIENT", {"clientId": "x"}),
    ]:
        ack = await peer.call("/clients", event, data)
        assert ack["status"] == "error" and ack["message"] == "Unauthorized", event
    assert await refused(peer, "/debug", auth("alice", key)) == "Unauthorized"
    assert peer.connected("/clients") and peer.connected("/llm")


async def test_network_safe_restricts_remote_admins(server, peers):
    remote = await admin(server, peers, namespaces=("/clients",), peer_options={"headers": REMOTE})
    admin_key = server.keys["admin"]
    ack = await remote.call("/clients", "GENERATE_CLIENT_KEY", {"targetClientId": "x"})
    assert ack["message"] == "Only loopback connections may do this while networkSafe is on."
    assert "loopback" in await refused(
        remote, "/debug", auth("admin", admin_key, clientType="monitor")
    )
    # key issuance and the key-less read without a password: loopback only
    await server.trust("SillyTavern-8000", ClientKind.SILLYTAVERN)
    getkey = auth("SillyTavern-8000", "getKey", clientType="SillyTavern")
    assert "loopback" in await refused(remote, "/sillytavern", getkey)
    assert "loopback" in await refused(
        remote, "/function_call", auth("SillyTavern-8000", clientType="SillyTavern")
    )
    assert remote.connected("/clients")
    # the same admin over loopback is fine
    local = await admin(server, peers, namespaces=("/clients",))
    assert (await local.call("/clients", "GENERATE_CLIENT_KEY", {"targetClientId": "x"}))[
        "status"
    ] == "ok"


@pytest.mark.parametrize("server_settings", [{"networkSafe": False}])
async def test_network_safe_off_allows_remote_admins_but_still_authenticates(server, peers):
    remote = await admin(
        server, peers, namespaces=("/clients", "/debug"), peer_options={"headers": REMOTE}
    )
    ack = await remote.call("/clients", "GENERATE_CLIENT_KEY", {"targetClientId": "x"})
    assert ack["status"] == "ok"
    assert (await remote.call("/debug", "SERVER_STATUS"))["status"] == "ok"
    with pytest.raises(Refused, match="Invalid key"):
        await remote.open("/llm", auth("admin", "nope", clientType="monitor"))
    with pytest.raises(Refused, match="not trusted"):
        await remote.open("/rooms", auth("nobody", "nope"))
    assert remote.connected("/clients") and remote.connected("/debug")


def test_loopback_answers_per_address_from_a_bounded_cache():
    # asked on every handshake and connect; remembered per address string
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.10") and is_loopback("::1")
    assert not is_loopback("203.0.113.7") and not is_loopback("::ffff:203.0.113.7")
    assert not is_loopback("") and not is_loopback("localhost") and not is_loopback("not an ip")
    assert is_loopback("127.0.0.1")  # a remembered answer is the same answer
    limit = is_loopback.cache_info().maxsize
    assert limit is not None
    for i in range(limit + 100):
        is_loopback(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert is_loopback.cache_info().currsize <= limit
    assert is_loopback("127.0.0.1") and not is_loopback("10.0.0.1")
