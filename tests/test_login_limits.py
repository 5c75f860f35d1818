"""The failed-login limiter and the key-issuance limits: guesses are bounded
per (address, clientId), the innocent are not locked out, a forged
X-Forwarded-For changes nothing, and getKey cannot keep bcrypt busy."""

from __future__ import annotations

import pytest

from newage.protocol.names import ClientKind
from tests.helpers.client import Refused, auth

LIMITED = "Too many failed attempts"


async def guess(peer, client_id: str, times: int, **extra) -> None:
    for _ in range(times):
        with pytest.raises(Refused, match="Invalid key"):
            await peer.open("/rooms", auth(client_id, "bad", **extra))


@pytest.mark.parametrize("server_settings", [{"authFailureLimit": 3}])
async def test_failures_count_per_address_and_client(server, peers):
    alice_key = await server.client("alice")
    bob_key = await server.client("bob")
    await server.client("admin", ClientKind.MONITOR)
    attacker = peers()
    await guess(attacker, "admin", 3, clientType="monitor")
    await guess(attacker, "bob", 3)
    # bob's own guesses lock bob's unverified key out, from this address...
    with pytest.raises(Refused, match=LIMITED) as err:
        await attacker.open("/rooms", auth("bob", bob_key))
    assert err.value.detail["code"] == "rate_limited"
    # ...but nobody else from the same (loopback) address
    alice = peers()
    await alice.open("/rooms", auth("alice", alice_key))
    # and bob from another address
    elsewhere = peers(headers={"X-Forwarded-For": "203.0.113.9"})
    await elsewhere.open("/rooms", auth("bob", bob_key))
    assert elsewhere.connected("/rooms") and alice.connected("/rooms")


@pytest.mark.parametrize("server_settings", [{"authFailureLimit": 3}])
async def test_a_working_key_still_opens_while_guesses_are_refused(server, peers):
    key = await server.client("admin", ClientKind.MONITOR)
    admin = peers()
    await admin.open("/llm", auth("admin", key, clientType="monitor"))
    attacker = peers()
    await guess(attacker, "admin", 3, clientType="monitor")
    with pytest.raises(Refused, match=LIMITED):  # no more bcrypt work for guesses
        await attacker.open("/rooms", auth("admin", "another-guess", clientType="monitor"))
    # the key the admin already used is recognised without bcrypt
    await admin.open("/rooms", auth("admin", key, clientType="monitor"))
    assert admin.connected("/llm") and admin.connected("/rooms")


@pytest.mark.parametrize("server_settings", [{"authFailureLimit": 3, "forwardedAllowIps": []}])
async def test_a_forged_forwarded_for_is_ignored(server, peers):
    key = await server.client("bob")
    for n in range(3):
        forger = peers(headers={"X-Forwarded-For": f"198.51.100.{n}"})
        await guess(forger, "bob", 1)
    forger = peers(headers={"X-Forwarded-For": "198.51.100.200"})
    with pytest.raises(Refused, match=LIMITED):
        await forger.open("/rooms", auth("bob", key))


@pytest.mark.parametrize("server_settings", [{"forwardedAllowIps": []}])
async def test_without_trusted_proxies_a_forwarded_address_is_not_remote(server, peers):
    """A loopback peer stays loopback whatever it claims (the key-less
    extension login is a loopback privilege)."""
    await server.trust("SillyTavern-1", ClientKind.SILLYTAVERN)
    peer = peers(headers={"X-Forwarded-For": "203.0.113.7"})
    await peer.open("/auth", auth("SillyTavern-1", "getKey", clientType="SillyTavern"))
    assigned = await peer.next("/auth", "CLIENT_KEY_ASSIGNED")
    assert assigned["success"] is True


@pytest.mark.parametrize("server_settings", [{"keyIssueLimit": 2}])
async def test_key_issuance_is_limited_per_address(server, peers):
    await server.trust("SillyTavern-1", ClientKind.SILLYTAVERN)
    getkey = auth("SillyTavern-1", "getKey", clientType="SillyTavern")
    for _ in range(2):
        peer = peers()
        await peer.open("/auth", getkey)
        assert (await peer.next("/auth", "CLIENT_KEY_ASSIGNED"))["success"] is True
    peer = peers()
    await peer.open("/auth", getkey)
    refused = await peer.next("/auth", "CLIENT_KEY_ASSIGNED")
    assert refused["success"] is False and refused["code"] == "rate_limited"
    assert refused["message"] == "Too many keys issued; try again later."
    st = peers()
    await st.open("/sillytavern", getkey)
    ack = await st.call("/sillytavern", "IDENTIFY_SILLYTAVERN", {"clientId": "SillyTavern-1"})
    assert ack["status"] == "error" and ack["message"] == refused["message"]


@pytest.mark.parametrize("server_settings", [{"keyIssueLimit": 100, "keyIssueGlobalLimit": 2}])
async def test_key_issuance_is_limited_overall(server, peers):
    await server.trust("SillyTavern-1", ClientKind.SILLYTAVERN)
    getkey = auth("SillyTavern-1", "getKey", clientType="SillyTavern")
    outcomes = []
    for n in range(3):
        peer = peers(headers={"X-Forwarded-For": f"127.0.0.{n + 2}"})
        await peer.open("/auth", getkey)
        outcomes.append((await peer.next("/auth", "CLIENT_KEY_ASSIGNED"))["success"])
    assert outcomes == [True, True, False]
