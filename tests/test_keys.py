"""Keys: several per client, bounded in number, issued ones expire when unused."""

from __future__ import annotations

import sqlite3

import pytest

from newage.protocol.names import ClientKind
from tests.helpers.client import Peer, Refused, auth
from tests.helpers.wait import eventually

EXT = "SillyTavern-8000"


async def get_key(server, peers) -> str:
    """The extension's login: getKey, then IDENTIFY_SILLYTAVERN."""
    st = peers()
    await st.open("/sillytavern", auth(EXT, "getKey", clientType="SillyTavern"))
    ack = await st.call("/sillytavern", "IDENTIFY_SILLYTAVERN", {"clientId": EXT})
    assert ack["status"] in ("ok", "warning"), ack
    await st.close()
    return str(ack["key"])


async def opens(server, key: str) -> bool:
    peer = Peer(server.url)
    try:
        await peer.open("/llm", auth(EXT, key, clientType="SillyTavern"))
    except Refused as refused:
        assert refused.message == "Invalid key."
        return False
    finally:
        await peer.close()
    return True


@pytest.mark.parametrize("server_settings", [{"maxKeysPerClient": 3}])
async def test_live_keys_per_client_are_bounded_oldest_dropped(server, peers):
    keys = [await get_key(server, peers) for _ in range(4)]
    assert len(set(keys)) == 4
    assert [await opens(server, k) for k in keys] == [False, True, True, True]
    assert len(await server.app.store.list_keys(EXT)) == 3


@pytest.mark.parametrize("server_settings", [{"keyExpiryDays": 7}])
async def test_issued_keys_unused_for_the_expiry_expire_admin_keys_do_not(server, peers):
    stale, fresh = await get_key(server, peers), await get_key(server, peers)
    admin_made = await server.client("bot")
    assert await opens(server, stale)
    # ten days pass for the first issued key and for the admin's key
    db = sqlite3.connect(server.data_dir / "newage.db")
    with db:
        stale_fp = (await server.app.store.list_keys(EXT))[0].fingerprint
        for client_id, fp in ((EXT, stale_fp), ("bot", None)):
            db.execute(
                "UPDATE client_keys SET created_at = '2020-01-01T00:00:00.000Z', "
                "last_used_at = '2020-01-02T00:00:00.000Z' WHERE client_id = ? "
                "AND (? IS NULL OR fingerprint = ?)",
                (client_id, fp, fp),
            )
    db.close()
    # the server notices another process's write within 100 ms
    await eventually(
        lambda: any(
            k.last_used_at and k.last_used_at.startswith("2020")
            for k in server.app.credentials.keys.get(EXT, [])
        )
    )
    assert not await opens(server, stale)
    assert await opens(server, fresh)
    bot = Peer(server.url)
    await bot.open("/llm", auth("bot", admin_made))
    await bot.close()
    # the next issuance clears the expired key away
    await get_key(server, peers)
    assert stale_fp not in {k.fingerprint for k in await server.app.store.list_keys(EXT)}


async def test_an_admin_key_replaces_all_issued_keys(server, peers):
    issued = [await get_key(server, peers) for _ in range(2)]
    await server.trust("admin", ClientKind.MONITOR)
    boss = peers()
    admin_key = await server.client("admin", ClientKind.MONITOR)
    await boss.open("/clients", auth("admin", admin_key, clientType="monitor"))
    listed = await boss.call("/clients", "GET_CLIENT_KEY", {"clientId": EXT})
    assert listed["status"] == "ok" and len(listed["keys"]) == 2
    assert all(k["issued"] for k in listed["keys"]) and "$2" not in str(listed)
    made = await boss.call("/clients", "GENERATE_CLIENT_KEY", {"targetClientId": EXT})
    assert made["status"] == "ok"
    assert [await opens(server, k) for k in (*issued, made["key"])] == [False, False, True]
    one = await boss.call(
        "/clients",
        "REMOVE_CLIENT_KEY",
        {"targetClientId": EXT, "fingerprint": made["fingerprint"]},
    )
    assert one["status"] == "ok" and not await opens(server, made["key"])
