"""Everything /rooms acknowledges survives a restart."""

from __future__ import annotations

from tests.helpers.actors import admin, connect, extension, room


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


async def snapshot(server, boss):
    rooms = (await boss.call("/rooms", "GET_ROOMS"))["roomDetails"]
    members = {
        r["name"]: (await boss.call("/rooms", "GET_CLIENTS_IN_ROOM", r["name"]))["clients"]
        for r in rooms
    }
    view = await boss.call("/rooms", "GET_ASSIGNMENTS")
    return {
        "rooms": sorted(
            (r["name"], r["mode"], r["master"], tuple(r["managers"]), tuple(r["guests"]))
            for r in rooms
        ),
        "members": {
            name: [(m["identity"], m["role"], m["joinedAt"]) for m in ms]
            for name, ms in members.items()
        },
        "policy": (await boss.call("/rooms", "GET_CONNECTION_POLICY"))["policy"],
        "manual": view["manualAssignments"],
        "mutes": sorted(
            (m["identity"], m["roomName"], m["mutedUntil"], str(m["duration"]))
            for m in server.app.mutes.view()
        ),
        "history": {name: await server.app.store.count_messages(name) for name in members},
    }


async def test_state_before_equals_state_after(server, peers):
    boss = await admin(server, peers)
    await extension(server, peers, namespaces=("/llm",))
    web = await connect(server, peers, "web")
    await connect(server, peers, "guest")
    await room(boss, "tavern", {"web": "master", "guest": "guest", "offline-friend": "manager"})
    await room(boss, "quiet", {}, mode="Conversational")
    # the new master sets the mode and mutes
    ok(
        await web.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "tavern", "mode": "HostSubmit"}
        )
    )
    ok(
        await web.call(
            "/rooms",
            "MUTE_MEMBER",
            {"targetIdentity": "guest", "roomName": "tavern", "duration": 3600},
        )
    )
    ok(await boss.call("/rooms", "MUTE_MEMBER", {"targetIdentity": "offline-friend"}))
    ok(await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Manual"}))
    ok(
        await boss.call(
            "/rooms",
            "ASSIGN_EXTENSION_TO_CLIENT",
            {"clientRoom": "web", "extensions": ["SillyTavern-1"]},
        )
    )
    await room(boss, "doomed", {})
    ok(await boss.call("/rooms", "DELETE_ROOM", "doomed"))
    before = await snapshot(server, boss)
    assert before["policy"] == "Manual" and before["manual"] == {"web": ["SillyTavern-1"]}
    assert len(before["mutes"]) == 2 and before["history"]["tavern"] > 0

    await boss.close()
    await server.restart()
    boss2 = await admin(server, peers)
    after = await snapshot(server, boss2)
    assert after == before
    # and the state still works: the manual assignment comes back with the extension
    await extension(server, peers, namespaces=("/llm",))
    web2 = await connect(server, peers, "web")
    assert (await web2.call("/rooms", "GET_ASSIGNMENTS_FOR_ROOM"))["assignments"] == [
        "SillyTavern-1"
    ]
    assert server.app.mutes.muted("guest", "tavern") is not None


async def test_a_timed_mute_expires_after_a_restart(server, peers):
    boss = await admin(server, peers)
    await connect(server, peers, "web")
    await room(boss, "tavern", {"web": "guest"})
    ok(
        await boss.call(
            "/rooms", "MUTE_MEMBER", {"targetIdentity": "web", "roomName": "tavern", "duration": 1}
        )
    )
    await boss.close()
    await server.restart()
    web = await connect(server, peers, "web")
    lifted = await web.next("/llm", "MEMBER_UNMUTED", timeout=4)
    assert lifted["unmutedBy"] == "System"
