"""/rooms: rooms, members, roles, moderation, modes (real server, real clients)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.actors import admin, connect, extension, room
from tests.helpers.wait import settle


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


def err(ack, message=None):
    assert ack["status"] == "error", ack
    if message is not None:
        assert ack["message"] == message, ack
    return ack


async def test_create_list_and_describe_rooms(server, peers):
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "CREATE_ROOM", "lobby"))  # bare string alias
    made = ok(await boss.call("/rooms", "CREATE_ROOM", {"roomName": "tavern"}))
    assert made["room"]["master"] == "admin" and made["room"]["mode"] == "Immediate"
    err(await boss.call("/rooms", "CREATE_ROOM", {"roomName": "lobby"}), "Room already exists")
    err(await boss.call("/rooms", "CREATE_ROOM", "monitor-room"), "Room already exists")
    err(await boss.call("/rooms", "CREATE_ROOM", {"roomName": ""}))
    err(await boss.call("/rooms", "CREATE_ROOM", {"roomName": 5}))
    err(await boss.call("/rooms", "CREATE_ROOM", {}))
    web = await connect(server, peers, "web")
    err(await web.call("/rooms", "CREATE_ROOM", "mine"), "Unauthorized")
    err(await boss.call("/rooms", "CREATE_ROOM", "web"), "Room already exists")  # its personal room
    await connect(server, peers, "tabs", identity="tabs#1")
    err(await boss.call("/rooms", "CREATE_ROOM", "tabs"), "Room name is reserved for a client.")
    st = await extension(server, peers)
    ok(await st.call("/rooms", "CREATE_ROOM", "st-room"))
    rooms = ok(await boss.call("/rooms", "getRooms"))["rooms"]
    assert set(rooms) >= {
        "lobby",
        "tavern",
        "st-room",
        "monitor-room",
        "admin",
        "web",
        "SillyTavern-1",
        "tabs#1",
    }
    assert ok(await web.call("/rooms", "GET_ROOMS", {}))["rooms"] == ["web"]
    members = ok(await boss.call("/rooms", "getClientsInRoom", "tavern"))["clients"]
    assert [(m["identity"], m["role"], m["online"]) for m in members] == [("admin", "master", True)]
    err(await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", "nope"), "Room not found")


async def test_join_notifies_and_mirrors_membership(server, peers):
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "CREATE_ROOM", "tavern"))
    web = await connect(server, peers, "web")
    ok(await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", {"clientId": "web", "roomName": "tavern"}))
    for ns in ("/rooms", "/"):
        changed = await web.next(ns, "MEMBER_ROLE_CHANGED")
        assert changed == {
            "clientId": "web",
            "identity": "web",
            "targetIdentity": "web",
            "roomName": "tavern",
            "role": "guest",
            "newRole": "guest",
            "previousRole": None,
        }
        joined = await boss.next(ns, "MEMBER_JOINED")
        assert joined == {
            "clientId": "web",
            "identity": "web",
            "roomName": "tavern",
            "role": "guest",
        }
    system = await web.next("/llm", "NEW_MESSAGE", lambda p: p["roomName"] == "tavern")
    assert system["message"]["data"] == "[System] web has joined the room as guest."
    assert system["message"]["isSystem"] is True and system["message"]["identity"] == "System"
    err(
        await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "web", "roomName": "tavern"}),
        "Client already in room",
    )
    # the new member hears the room's broadcasts without reconnecting
    ok(
        await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "tavern", "mode": "MasterOnly"}
        )
    )
    mode = await web.next("/rooms", "ROOM_MODE_CHANGED")
    assert mode == {"roomName": "tavern", "mode": "MasterOnly", "setter": "admin"}
    # and after a reconnect too
    await web.close()
    web2 = await connect(server, peers, "web")
    ok(
        await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "tavern", "mode": "Separate"}
        )
    )
    assert (await web2.next("/rooms", "ROOM_MODE_CHANGED"))["mode"] == "Immediate"


async def test_membership_permissions(server, peers):
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "CREATE_ROOM", "tavern"))
    master = await connect(server, peers, "m")
    manager = await connect(server, peers, "mgr")
    guest = await connect(server, peers, "g")
    await connect(server, peers, "other")
    ok(
        await boss.call(
            "/rooms",
            "ADD_CLIENT_TO_ROOM",
            {"identity": "m", "roomName": "tavern", "role": "master"},
        )
    )
    room = server.app.rooms.rooms["tavern"]
    assert (
        room.role("m").value == "master" and room.role("admin").value == "manager"
    )  # old master demoted
    ok(
        await master.call(
            "/rooms",
            "ADD_CLIENT_TO_ROOM",
            {"identity": "mgr", "roomName": "tavern", "role": "manager"},
        )
    )
    err(
        await manager.call(
            "/rooms",
            "ADD_CLIENT_TO_ROOM",
            {"identity": "g", "roomName": "tavern", "role": "master"},
        ),
        "Only the master or an admin may grant master.",
    )
    ok(await manager.call("/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "g", "roomName": "tavern"}))
    err(
        await guest.call(
            "/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "other", "roomName": "tavern"}
        ),
        "Unauthorized",
    )
    err(
        await manager.call(
            "/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "x", "roomName": "tavern", "role": "boss"}
        ),
        "Invalid role",
    )
    # roles: only the master (or an admin)
    err(
        await manager.call(
            "/rooms",
            "SET_MEMBER_ROLE",
            {"targetIdentity": "g", "roomName": "tavern", "role": "manager"},
        ),
        "Unauthorized",
    )
    ok(
        await master.call(
            "/rooms",
            "SET_MEMBER_ROLE",
            {"targetClientId": "g", "roomName": "tavern", "role": "manager"},
        )
    )
    changed = await guest.next("/rooms", "MEMBER_ROLE_CHANGED", lambda p: p["role"] == "manager")
    assert changed["previousRole"] == "guest"
    ok(
        await master.call(
            "/rooms",
            "SET_MEMBER_ROLE",
            {"targetIdentity": "g", "roomName": "tavern", "role": "guest"},
        )
    )
    # managers cannot act on the master or other managers
    err(
        await manager.call("/rooms", "KICK_MEMBER", {"targetIdentity": "m", "roomName": "tavern"}),
        "Managers cannot act on the master or other managers.",
    )
    err(
        await guest.call("/rooms", "KICK_MEMBER", {"targetIdentity": "mgr", "roomName": "tavern"}),
        "Unauthorized",
    )
    # anyone may leave; nobody leaves their personal room
    ok(
        await guest.call(
            "/rooms", "REMOVE_CLIENT_FROM_ROOM", {"identity": "g", "roomName": "tavern"}
        )
    )
    err(
        await boss.call("/rooms", "REMOVE_CLIENT_FROM_ROOM", {"identity": "g", "roomName": "g"}),
        "Invalid operation",
    )
    err(
        await boss.call("/rooms", "KICK_MEMBER", {"targetIdentity": "g", "roomName": "g"}),
        "Invalid operation",
    )
    err(
        await boss.call(
            "/rooms", "REMOVE_CLIENT_FROM_ROOM", {"identity": "g", "roomName": "tavern"}
        ),
        "Client not in room",
    )
    err(
        await boss.call(
            "/rooms", "REMOVE_CLIENT_FROM_ROOM", {"identity": "g", "roomName": "nowhere"}
        ),
        "Room not found",
    )


async def test_kick_warns_and_stops_broadcasts(server, peers):
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "CREATE_ROOM", "tavern"))
    web = await connect(server, peers, "web")
    ok(await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "web", "roomName": "tavern"}))
    ok(await boss.call("/rooms", "KICK_MEMBER", {"targetIdentity": "web", "roomName": "tavern"}))
    for ns in ("/", "/rooms"):
        warning = await web.next(ns, "WARNING")
        assert warning["message"] == "You have been kicked from room tavern."
    left = await boss.next("/rooms", "MEMBER_LEFT")
    assert left == {"clientId": "web", "identity": "web", "roomName": "tavern"}
    await settle(boss, "/rooms")
    assert boss.received("/rooms", "MEMBER_LEFT") == []  # exactly one
    system = await boss.next("/llm", "NEW_MESSAGE", lambda p: "has left" in p["message"]["data"])
    assert system["message"]["data"] == "[System] web has left the room."
    ok(
        await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "tavern", "mode": "HostSubmit"}
        )
    )
    await settle(web, "/rooms")
    assert web.received("/rooms", "ROOM_MODE_CHANGED") == []


async def test_modes(server, peers):
    boss = await admin(server, peers)
    ok(await boss.call("/rooms", "CREATE_ROOM", "tavern"))
    set_mode = lambda **d: boss.call("/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", d)  # noqa: E731
    assert ok(await set_mode(roomName="tavern", mode="Default"))["mode"] == "HostSubmit"
    assert ok(await set_mode(roomName="tavern", mode="HostSubmit"))["changed"] is False
    err(
        await set_mode(roomName="tavern", mode="Chaos"),
        "Invalid mode specified. Valid modes are: Immediate, HostSubmit, MasterOnly, Conversational",
    )
    err(await set_mode(roomName="tavern"), "roomName and mode are required.")
    err(await set_mode(roomName="nope", mode="Immediate"), "Room nope not found.")
    web = await connect(server, peers, "web")
    err(
        await web.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "tavern", "mode": "Immediate"}
        ),
        "Permission denied. Only room master/manager or admin can set the mode.",
    )
    # the per-room mode through the legacy event, and the default for new rooms
    ok(
        await boss.call(
            "/rooms", "SET_MESSAGE_REQUEST_MODE", {"roomName": "tavern", "mode": "Conversational"}
        )
    )
    err(
        await web.call("/rooms", "SET_MESSAGE_REQUEST_MODE", {"mode": "MasterOnly"}), "Unauthorized"
    )
    ok(await boss.call("/rooms", "SET_MESSAGE_REQUEST_MODE", {"mode": "MasterOnly"}))
    settings = json.loads((server.data_dir / "settings" / "server_settings.json").read_text())
    assert settings["defaultRoomMessageRequestMode"] == "MasterOnly"
    assert ok(await boss.call("/rooms", "CREATE_ROOM", "newer"))["room"]["mode"] == "MasterOnly"


async def test_delete_room(server, peers):
    boss = await admin(server, peers)
    master = await connect(server, peers, "m")
    web = await connect(server, peers, "web")
    await room(boss, "tavern", {"m": "master", "web": "guest"})
    err(await web.call("/rooms", "DELETE_ROOM", "tavern"), "Unauthorized")
    err(await boss.call("/rooms", "DELETE_ROOM", "monitor-room"), "monitor-room cannot be deleted.")
    err(
        await boss.call("/rooms", "DELETE_ROOM", "web"),
        "Cannot delete a personal room of a connected client.",
    )
    assert await server.app.store.count_messages("tavern") > 0
    ok(await master.call("/rooms", "DELETE_ROOM", {"roomName": "tavern"}))
    notice = await web.next("/rooms", "DELETE_ROOM")
    assert notice == {"roomName": "tavern", "message": 'Room "tavern" has been deleted.'}
    assert "tavern" not in server.app.rooms.rooms
    assert await server.app.store.count_messages("tavern") == 0  # history goes with the room
    assert "tavern" not in server.app.rooms.rooms_of("web")
    err(await boss.call("/rooms", "DELETE_ROOM", "tavern"), "Room not found")
    ok(await boss.call("/rooms", "CREATE_ROOM", "tavern"))  # the name is free again
    members = ok(await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", "tavern"))["clients"]
    assert [m["identity"] for m in members] == ["admin"]


async def test_mutes(server, peers):
    boss = await admin(server, peers)
    web = await connect(server, peers, "web")
    mgr = await connect(server, peers, "mgr")
    await room(boss, "tavern", {"web": "guest", "mgr": "manager"})
    muted = ok(
        await mgr.call(
            "/rooms", "MUTE_MEMBER", {"targetClientId": "web", "roomName": "tavern", "duration": 1}
        )
    )
    assert muted["duration"] == 1
    for ns in ("/llm", "/rooms"):
        notice = await web.next(ns, "MEMBER_MUTED")
        assert (
            notice["identity"] == "web"
            and notice["mutedBy"] == "mgr"
            and notice["roomName"] == "tavern"
        )
        assert notice["duration"] == 1 and notice["mutedUntil"].endswith("Z")
    status = await boss.next("/llm", "MEMBER_STATUS_UPDATE", lambda p: p["status"] == "muted")
    assert status["identity"] == "web" and status["roomName"] == "tavern"
    text = await boss.next("/llm", "NEW_MESSAGE", lambda p: "muted" in p["message"]["data"])
    assert text["message"]["data"] == "[System] web has been muted by mgr for 1 seconds."
    assert server.app.mutes.muted("web", "tavern") is not None
    assert server.app.mutes.muted("web", "web") is None  # only in that room
    # the sweep lifts it and says so
    lifted = await web.next("/llm", "MEMBER_UNMUTED", timeout=4)
    assert lifted == {"identity": "web", "unmutedBy": "System", "roomName": "tavern"}
    assert server.app.mutes.muted("web", "tavern") is None
    # permanent, then lifted by hand
    assert (
        ok(
            await boss.call(
                "/rooms", "MUTE_MEMBER", {"targetIdentity": "web", "roomName": "tavern"}
            )
        )["duration"]
        == "permanent"
    )
    err(
        await web.call("/rooms", "UNMUTE_MEMBER", {"targetIdentity": "web", "roomName": "tavern"}),
        "Unauthorized",
    )
    ok(await mgr.call("/rooms", "UNMUTE_MEMBER", {"targetIdentity": "web", "roomName": "tavern"}))
    assert (
        ok(
            await mgr.call(
                "/rooms", "UNMUTE_MEMBER", {"targetIdentity": "web", "roomName": "tavern"}
            )
        )["message"]
        == "Not muted."
    )
    # managers cannot mute the master; only admins mute everywhere
    err(await mgr.call("/rooms", "MUTE_MEMBER", {"targetIdentity": "admin", "roomName": "tavern"}))
    err(
        await mgr.call("/rooms", "MUTE_MEMBER", {"targetIdentity": "web"}),
        "Only admins may mute everywhere; name a room.",
    )
    ok(await boss.call("/rooms", "MUTE_MEMBER", {"targetIdentity": "web", "duration": 3600}))
    assert server.app.mutes.muted("web", "anywhere") is not None
    err(
        await boss.call(
            "/rooms",
            "MUTE_MEMBER",
            {"targetIdentity": "web", "roomName": "tavern", "duration": "x"},
        )
    )


async def test_negative_or_huge_mute_durations_are_refused(server, peers):
    boss = await admin(server, peers)
    await connect(server, peers, "web")
    await room(boss, "tavern", {"web": "guest"})
    for duration in (-1, -0.5, 10**12, 1e308, True):
        refused = err(
            await boss.call(
                "/rooms",
                "MUTE_MEMBER",
                {"targetIdentity": "web", "roomName": "tavern", "duration": duration},
            )
        )
        assert refused["message"].startswith("duration must be"), refused
        assert server.app.mutes.muted("web", "tavern") is None
    assert await server.app.store.load_mutes() == []
    muted = ok(
        await boss.call(
            "/rooms", "MUTE_MEMBER", {"targetIdentity": "web", "roomName": "tavern", "duration": 0}
        )
    )
    assert muted["duration"] == "permanent"  # 0 stays the original's "permanent"


async def test_monitors_hear_room_traffic_through_monitor_room(server, peers):
    boss = await admin(server, peers, namespaces=("/llm", "/rooms"))
    ok(await boss.call("/rooms", "CREATE_ROOM", "tavern"))
    await connect(server, peers, "web")
    other = await admin(server, peers, namespaces=("/", "/llm"), identity="admin#2")
    ok(await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "web", "roomName": "tavern"}))
    # admin#2 is no member of tavern: it hears it through monitor-room
    assert not server.app.rooms.is_member("admin#2", "tavern")
    message = await other.next("/llm", "NEW_MESSAGE", lambda p: p["roomName"] == "tavern")
    assert "joined" in message["message"]["data"]


async def test_admins_see_every_rooms_changes(server, peers):
    watcher = await admin(server, peers, identity="admin#watch")
    boss = await admin(server, peers, identity="admin#act")
    web = await connect(server, peers, "web")
    ok(await boss.call("/rooms", "CREATE_ROOM", "tavern"))
    created = await watcher.next("/rooms", "ROOM_CREATED")
    assert created["roomName"] == "tavern" and created["room"]["master"] == "admin#act"
    ok(await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "web", "roomName": "tavern"}))
    assert (await watcher.next("/rooms", "MEMBER_JOINED"))["identity"] == "web"
    ok(
        await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "tavern", "mode": "MasterOnly"}
        )
    )
    assert (await watcher.next("/rooms", "ROOM_MODE_CHANGED"))["mode"] == "MasterOnly"
    ok(
        await boss.call(
            "/rooms", "MUTE_MEMBER", {"targetIdentity": "web", "roomName": "tavern", "duration": 60}
        )
    )
    members = ok(await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", "tavern"))["clients"]
    web_item = next(m for m in members if m["identity"] == "web")
    assert web_item["muted"] is True and web_item["mutedUntil"].endswith("Z")
    assert next(m for m in members if m["identity"] == "admin#act")["muted"] is False
    ok(await boss.call("/rooms", "DELETE_ROOM", "tavern"))
    assert (await watcher.next("/rooms", "DELETE_ROOM"))["roomName"] == "tavern"
    # and so does the room's member
    assert await web.next("/rooms", "DELETE_ROOM") == {
        "roomName": "tavern",
        "message": 'Room "tavern" has been deleted.',
    }


@pytest.mark.parametrize("server_settings", [dict(maxListPage=3)])
async def test_room_and_member_lists_are_paged(server, peers):
    boss = await admin(server, peers)
    for n in range(5):
        ok(await boss.call("/rooms", "CREATE_ROOM", f"room{n}"))
    first = ok(await boss.call("/rooms", "GET_ROOMS"))
    every = sorted(server.app.rooms.rooms)
    assert first["rooms"] == every[:3] and first["total"] == len(every)
    assert first["nextOffset"] == 3 and len(first["roomDetails"]) == 3
    names = list(first["rooms"])
    offset = first["nextOffset"]
    while offset is not None:
        page = ok(await boss.call("/rooms", "GET_ROOMS", {"offset": offset, "limit": 2}))
        assert len(page["rooms"]) <= 2
        names += page["rooms"]
        offset = page["nextOffset"]
    assert names == every
    for n in range(4):
        await connect(server, peers, f"m{n}")
    await room(boss, "big", {f"m{n}": "guest" for n in range(4)})
    members = ok(await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", "big"))  # bare string
    assert len(members["clients"]) == 3 and members["total"] == 5 and members["nextOffset"] == 3
    rest = ok(await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", {"roomName": "big", "offset": 3}))
    assert rest["nextOffset"] is None
    seen = [c["identity"] for c in members["clients"] + rest["clients"]]
    assert sorted(seen) == sorted(["admin", "m0", "m1", "m2", "m3"])
    err(await boss.call("/rooms", "GET_ROOMS", {"offset": -1}))
