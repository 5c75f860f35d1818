"""Identities, instances, sessions, personal rooms and the client list."""

from __future__ import annotations

import pytest

from newage.protocol.names import MONITOR_ROOM, ClientKind, Role
from tests.helpers.actors import fake_extension
from tests.helpers.client import Refused, auth
from tests.helpers.wait import eventually, settle


async def test_identity_defaults_to_client_id_and_tabs_coexist(server, peers):
    key = await server.client("web")
    tab1, tab2 = peers(), peers()
    await tab1.open("/llm", auth("web", key, identity="web#1", desc="first tab"))
    await tab2.open("/", auth("web", key, identity="web#2"))
    plain = peers()
    await plain.open("/llm", auth("web", key))
    sessions = server.app.presence.sessions
    assert set(sessions) == {"web#1", "web#2", "web"}
    assert sessions["web#1"].principal.client_id == "web"
    assert sessions["web#1"].principal.desc == "first tab"
    # each identity got its own personal room with itself as master
    for identity in ("web#1", "web#2", "web"):
        room = server.app.rooms.rooms[identity]
        assert room.personal_of == identity and room.role(identity) is Role.MASTER
    # one tab leaving ends its own session only; the others keep working
    await tab1.close()
    await eventually(lambda: "web#1" not in sessions)
    assert set(sessions) == {"web#2", "web"}
    for peer, namespace in ((tab2, "/"), (plain, "/llm")):
        await settle(peer, namespace)
        assert peer.connected(namespace)


async def test_sessions_start_on_default_or_llm_only(server, peers):
    key = await server.client("web")
    peer = peers()
    for namespace in ("/auth", "/rooms", "/clients", "/function_call"):
        await peer.open(namespace, auth("web", key))
    assert server.app.presence.sessions == {}
    assert "web" not in server.app.rooms.rooms
    await peer.open("/", auth("web", key))
    assert set(server.app.presence.sessions) == {"web"}
    await peer.close()
    await eventually(lambda: server.app.presence.sessions == {})
    await eventually(lambda: server.app.presence.sockets == {})


async def test_personal_rooms_and_monitor_room_survive_a_restart(server, peers):
    key = await server.client("web")
    admin_key = await server.client("admin", ClientKind.MONITOR)
    peer = peers()
    await peer.open("/llm", auth("web", key))
    await peer.open("/", auth("admin", admin_key, clientType="monitor"))
    monitor_room = server.app.rooms.rooms[MONITOR_ROOM]
    assert monitor_room.role("admin") is Role.MANAGER
    assert monitor_room.role("web") is None
    await peer.close()
    await server.restart()
    rooms = server.app.rooms.rooms
    assert rooms["web"].role("web") is Role.MASTER and rooms["admin"].role("admin") is Role.MASTER
    assert rooms[MONITOR_ROOM].role("admin") is Role.MANAGER


async def test_client_list_broadcast_on_session_start_and_end(server, peers):
    admin_key = await server.client("admin", ClientKind.MONITOR)
    watcher = peers()
    await watcher.open("/clients", auth("admin", admin_key, clientType="monitor"))
    key = await server.client("web")
    peer = peers()
    await peer.open(
        "/llm", auth("web", key, identity="web-1", desc="<b>hi</b>", clienthtml="http://x")
    )
    for event in ("UPDATE_CONNECTED_CLIENTS", "CONNECTED_CLIENTS_UPDATE"):
        update = await watcher.next(
            "/clients", event, lambda p: any(c["id"] == "web-1" for c in p["clients"])
        )
        item = next(c for c in update["clients"] if c["id"] == "web-1")
        assert item == {
            "clientId": "web-1",
            "identity": "web-1",
            "principal": "web",
            "clientType": "client",
            "kind": "client",
            "desc": "<b>hi</b>",
            "clientDesc": "<b>hi</b>",
            "description": "<b>hi</b>",
            "html": "http://x",
            "clientHTML": "http://x",
            "id": "web-1",
            "online": True,
            "connectedAt": item["connectedAt"],
            "namespaces": ["/llm"],
            "key": None,
        }
        assert [c["id"] for c in update["nonSillyTavernClients"]] == ["web-1"]
    await peer.close()
    gone = await watcher.next("/clients", "CONNECTED_CLIENTS_UPDATE", lambda p: p["clients"] == [])
    assert gone["nonSillyTavernClients"] == []


def namespaces_of(identity: str, update: dict) -> list[str] | None:
    item = next((c for c in update["clients"] if c["id"] == identity), None)
    return None if item is None else item["namespaces"]


async def test_a_second_socket_keeps_the_session(server, peers):
    admin_key = await server.client("admin", ClientKind.MONITOR)
    watcher = peers()
    await watcher.open("/clients", auth("admin", admin_key, clientType="monitor"))
    key = await server.client("web")
    a, b = peers(), peers()
    await a.open("/llm", auth("web", key))
    await b.open("/", auth("web", key))
    await watcher.next(
        "/clients", "CONNECTED_CLIENTS_UPDATE", lambda p: namespaces_of("web", p) == ["/", "/llm"]
    )
    await a.close()
    # the server has handled a's disconnect once the list shows it
    await watcher.next(
        "/clients", "CONNECTED_CLIENTS_UPDATE", lambda p: namespaces_of("web", p) == ["/"]
    )
    assert "web" in server.app.presence.sessions
    await b.close()
    await watcher.next("/clients", "CONNECTED_CLIENTS_UPDATE", lambda p: p["clients"] == [])
    assert "web" not in server.app.presence.sessions


async def test_extension_availability_follows_its_llm_socket(server, peers):
    key = await server.client("SillyTavern-1", ClientKind.SILLYTAVERN)
    ext = peers()
    await ext.open("/", auth("SillyTavern-1", key))
    assert server.app.relations.model.extensions == []  # a session alone is not enough
    await ext.open("/llm", auth("SillyTavern-1", key))
    assert server.app.relations.model.extensions == ["SillyTavern-1"]
    await ext.close()
    await eventually(lambda: server.app.relations.model.extensions == [])


async def test_client_list_follows_namespaces_of_a_session(server, peers):
    admin_key = await server.client("admin", ClientKind.MONITOR)
    watcher = peers()
    await watcher.open("/clients", auth("admin", admin_key, clientType="monitor"))
    key = await server.client("web")
    peer = peers()
    await peer.open("/", auth("web", key))
    first = await watcher.next(
        "/clients", "CONNECTED_CLIENTS_UPDATE", lambda p: namespaces_of("web", p) is not None
    )
    assert namespaces_of("web", first) == ["/"]
    await peer.open("/llm", auth("web", key))
    update = await watcher.next(
        "/clients", "CONNECTED_CLIENTS_UPDATE", lambda p: namespaces_of("web", p) == ["/", "/llm"]
    )
    # the watcher (on /clients only) has no session: web is the whole list
    assert update["clients"] == [
        {
            "clientId": "web",
            "identity": "web",
            "principal": "web",
            "clientType": "client",
            "kind": "client",
            "desc": None,
            "clientDesc": None,
            "description": None,
            "html": None,
            "clientHTML": None,
            "id": "web",
            "online": True,
            "connectedAt": first["clients"][0]["connectedAt"],  # the session's start
            "namespaces": ["/", "/llm"],
            "key": None,
        }
    ]
    assert update["nonSillyTavernClients"] == update["clients"]


async def test_switching_identities_leaves_no_unused_rooms_behind(server, peers):
    await fake_extension(server, peers)
    key = await server.client("web")
    for n in range(5):
        tab = peers()
        await tab.open("/llm", auth("web", key, identity=f"web#{n}"))
        assert f"web#{n}" in server.app.rooms.rooms
        if n == 0:  # this one is used: it keeps its room and history
            ack = await tab.call("/llm", "LLM_REQUEST", {"requestId": "r0", "message": "keep"})
            assert ack["status"] == "ok", ack
        await tab.close()
    await eventually(lambda: set(server.app.presence.sessions) == {"SillyTavern-1"})
    names = set(server.app.rooms.rooms)
    assert "web#0" in names
    assert not {f"web#{n}" for n in range(1, 5)} & names
    assert {r.name for r in await server.app.store.load_rooms()} == names
    # the clientId's own room is never removed, used or not
    plain = peers()
    await plain.open("/llm", auth("web", key))
    await plain.close()
    await eventually(lambda: set(server.app.presence.sessions) == {"SillyTavern-1"})
    assert "web" in server.app.rooms.rooms


# both requests reach the extension without waiting for an answer
@pytest.mark.parametrize("server_settings", [dict(maxRoomsPerClient=2, extensionConcurrency=2)])
async def test_a_plain_client_owns_a_bounded_number_of_identity_rooms(server, peers):
    ext = await fake_extension(server, peers)
    key = await server.client("web")
    for n in range(2):  # used identities keep their rooms
        tab = peers()
        await tab.open("/llm", auth("web", key, identity=f"web#{n}"))
        ack = await tab.call("/llm", "LLM_REQUEST", {"requestId": f"r{n}", "message": "hi"})
        assert ack["status"] == "ok", ack
        await ext.next_request()
        await tab.close()
    assert server.app.rooms.owned_by("web") == 2
    third = peers()
    with pytest.raises(Refused) as refused:
        await third.open("/llm", auth("web", key, identity="web#2"))
    assert refused.value.message == "Client web already has 2 identity rooms (maxRoomsPerClient)."
    assert "web#2" not in server.app.rooms.rooms
    assert "web#2" not in server.app.presence.sessions
    # its own identity and the identities it already has still connect
    again = peers()
    await again.open("/llm", auth("web", key))
    await again.open("/", auth("web", key, identity="web#0"))
