"""An identity belongs to one clientId: nobody connects as another's."""

from __future__ import annotations

import pytest

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect
from tests.helpers.client import Refused, auth
from tests.helpers.wait import eventually


@pytest.mark.parametrize("taken", ["SillyTavern-8000", "admin", "monitor-room", "System"])
async def test_an_identity_naming_a_client_or_a_reserved_name_is_refused(server, peers, taken):
    await server.trust("admin", ClientKind.MONITOR)
    key = await server.client("web")
    impostor = peers()
    with pytest.raises(Refused) as refused:
        await impostor.open("/llm", auth("web", key, identity=taken))
    assert "reserved" in refused.value.message or "clientId" in refused.value.message
    assert taken not in server.app.presence.sessions
    # the same client under its own names still works
    await impostor.open("/llm", auth("web", key, identity="web#tab"))


async def test_first_clientid_owns_an_identity_even_after_a_restart(server, peers):
    await connect(server, peers, "web", identity="web#1", namespaces=("/llm",))
    evil_key = await server.client("evil")
    with pytest.raises(Refused, match="belongs to another client"):
        await peers().open("/llm", auth("evil", evil_key, identity="web#1"))
    await server.restart()
    with pytest.raises(Refused, match="belongs to another client"):
        await peers().open("/", auth("evil", evil_key, identity="web#1"))
    # tabs of the owner keep their identities, as before
    web_key = await server.client("web")
    tab = peers()
    await tab.open("/llm", auth("web", web_key, identity="web#1"))
    await tab.open("/", auth("web", web_key, identity="web#1"))
    assert server.app.presence.sessions["web#1"].principal.client_id == "web"


async def test_admin_lists_and_releases_identities(server, peers):
    owner = await connect(server, peers, "web", identity="web#1", namespaces=("/llm",))
    boss = await admin(server, peers, namespaces=("/clients",))
    listed = await boss.call("/clients", "GET_IDENTITIES")
    assert listed["status"] == "ok"
    item = next(i for i in listed["identities"] if i["identity"] == "web#1")
    assert item["clientId"] == "web" and item["online"] is True and item["claimedAt"]

    plain = await connect(server, peers, "other", namespaces=("/clients",))
    for event, data in (("GET_IDENTITIES", {}), ("RELEASE_IDENTITY", {"identity": "web#1"})):
        denied = await plain.call("/clients", event, data)
        assert denied["status"] == "error" and denied["message"] == "Unauthorized"

    released = await boss.call("/clients", "RELEASE_IDENTITY", {"identity": "web#1"})
    assert released["status"] == "ok" and released["disconnected"] == 1
    await owner.next("/llm", "disconnect")
    # free again: the next clientId takes it
    newcomer = await connect(server, peers, "other", identity="web#1", namespaces=("/llm",))
    assert newcomer.connected("/llm")
    await eventually(lambda: server.app.presence.sessions["web#1"].principal.client_id == "other")
    again = await boss.call("/clients", "RELEASE_IDENTITY", {"identity": "nobody"})
    assert again["status"] == "error"


async def test_an_impostor_never_gets_the_extensions_requests(server, peers):
    """The attack of the report: a plain client connecting as the extension."""
    key = await server.client("web")
    for namespace in ("/llm", "/", "/rooms", "/function_call"):
        with pytest.raises(Refused):
            await peers().open(namespace, auth("web", key, identity="SillyTavern-8000"))
    assert not server.app.presence.identity_sids("SillyTavern-8000")


async def test_trusting_a_clientid_takes_that_name_from_other_clients_tabs(server, peers):
    tab = await connect(server, peers, "web", identity="bob", namespaces=("/llm",))
    boss = await admin(server, peers, namespaces=("/clients",))
    ack = await boss.call("/clients", "ADD_TRUSTED_CLIENT", {"clientId": "bob"})
    assert ack["status"] == "ok" and ack["disconnected"] == 1
    await tab.next("/llm", "disconnect")
    bob_key = await server.client("bob")
    bob = peers()
    await bob.open("/llm", auth("bob", bob_key))
    assert server.app.presence.sessions["bob"].principal.client_id == "bob"
