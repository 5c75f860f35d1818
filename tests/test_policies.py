"""Connection policies: invariants (hypothesis) and delivery (real clients)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from newage.domain.rooms.policies import Assignments
from newage.protocol.names import ConnectionPolicy
from tests.helpers.actors import admin, connect, extension
from tests.helpers.wait import settle

EXTS = [f"SillyTavern-{i}" for i in range(4)]
ROOMS = [f"client-{i}" for i in range(6)]
ops = st.one_of(
    st.tuples(st.just("add_ext"), st.sampled_from(EXTS)),
    st.tuples(st.just("rm_ext"), st.sampled_from(EXTS)),
    st.tuples(st.just("add_room"), st.sampled_from(ROOMS)),
    st.tuples(st.just("rm_room"), st.sampled_from(ROOMS)),
    st.tuples(
        st.just("manual"),
        st.tuples(st.sampled_from(ROOMS), st.lists(st.sampled_from(EXTS), max_size=3)),
    ),
)


def check_invariants(a: Assignments) -> None:
    assert set(a.current) == set(a.client_rooms)
    connected = a.extensions
    for room, exts in a.current.items():
        assert set(exts) <= set(connected)
        if a.policy in (ConnectionPolicy.FREE, ConnectionPolicy.BROADCAST):
            assert exts == connected
        elif a.policy is ConnectionPolicy.MANUAL:
            assert exts == [e for e in a.manual.get(room, []) if e in connected]
        else:
            assert len(exts) == (1 if connected else 0)
    if a.policy is ConnectionPolicy.BALANCED and connected:
        loads = [sum(1 for exts in a.current.values() if ext in exts) for ext in connected]
        assert max(loads) - min(loads) <= 1


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(ConnectionPolicy)), st.lists(ops, max_size=40), st.integers(0, 2**16))
def test_policy_invariants(policy, steps, seed):
    a = Assignments(policy, seed=seed)
    for op, arg in steps:
        before = a.snapshot()
        was_connected = list(a.extensions)
        if op == "add_ext":
            changed = a.add_extension(arg)
        elif op == "rm_ext":
            changed = a.remove_extension(arg)
        elif op == "add_room":
            changed = a.add_client_room(arg)
        elif op == "rm_room":
            changed = a.remove_client_room(arg)
        else:
            changed = a.set_manual(*arg)
        check_invariants(a)
        # only adding and removing an extension changes who is connected
        expected = set(was_connected)
        if op == "add_ext":
            expected.add(arg)
        elif op == "rm_ext":
            expected.discard(arg)
        assert set(a.extensions) == expected and len(a.extensions) == len(expected), (op, arg)
        # "changed" reports exactly the rooms whose list is different
        assert changed == {r: e for r, e in a.current.items() if before.get(r) != e}
        if policy in (ConnectionPolicy.BALANCED, ConnectionPolicy.RANDOM):
            kept = [
                r
                for r, exts in before.items()
                if r in a.current and exts and exts[0] in a.extensions
            ]
            moved = [r for r in kept if a.current[r] != before[r]]
            if policy is ConnectionPolicy.RANDOM or op in ("add_room", "rm_ext", "manual"):
                assert moved == [], (op, arg, before, a.current)
            elif op == "add_ext":
                assert all(a.current[r] == [arg] for r in moved)
            elif op == "rm_room":
                assert len(moved) <= 1


def test_manual_assignment_comes_back_on_reconnect():
    a = Assignments(ConnectionPolicy.MANUAL)
    a.add_extension("e1")
    a.add_client_room("c")
    assert a.set_manual("c", ["e1", "e2"]) == {"c": ["e1"]}
    assert a.remove_extension("e1") == {"c": []}
    assert a.add_extension("e2") == {"c": ["e2"]}
    assert a.add_extension("e1") == {"c": ["e1", "e2"]}


def test_policy_switch_starts_afresh():
    a = Assignments(ConnectionPolicy.FREE, seed=1)
    for e in ("e1", "e2"):
        a.add_extension(e)
    for r in ("c1", "c2", "c3"):
        a.add_client_room(r)
    changed = a.set_policy(ConnectionPolicy.BALANCED)
    assert sorted(changed) == ["c1", "c2", "c3"]
    assert sorted(len(v) for v in a.current.values()) == [1, 1, 1]
    assert a.set_policy(ConnectionPolicy.BALANCED) == {}


# ---------------------------------------------------------------- end to end
async def test_available_extensions_reach_client_rooms(server, peers):
    boss = await admin(server, peers)
    web = await connect(server, peers, "web")
    first = await web.next("/rooms", "AVAILABLE_EXTENSIONS")
    assert first == {"extensions": []}
    ext = await extension(server, peers, namespaces=("/llm",))
    assert (await web.next("/rooms", "AVAILABLE_EXTENSIONS")) == {"extensions": ["SillyTavern-1"]}
    update = await boss.next(
        "/rooms", "ASSIGNMENTS_UPDATED", lambda p: p["extensions"] == ["SillyTavern-1"]
    )
    assert update["assignments"] == {"web": ["SillyTavern-1"]} and update["policy"] == "Free"
    await ext.close()
    assert (await web.next("/rooms", "AVAILABLE_EXTENSIONS")) == {
        "extensions": []
    }  # an empty list too
    # a second instance of the same client hears its own room only
    tab = await connect(server, peers, "web", identity="web#2")
    assert (await tab.next("/rooms", "AVAILABLE_EXTENSIONS")) == {"extensions": []}
    # anything sent to web when the tab came was queued before this answer
    await settle(web, "/rooms")
    assert web.received("/rooms", "AVAILABLE_EXTENSIONS") == []


async def test_balanced_and_manual_end_to_end(server, peers):
    boss = await admin(server, peers)
    err = await (await connect(server, peers, "web0")).call(
        "/rooms", "SET_CONNECTION_POLICY", {"policy": "Balanced"}
    )
    assert err["message"] == "Unauthorized"
    bad = await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Chaos"})
    assert bad["message"] == "Invalid connection policy"
    assert (await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Balanced"}))[
        "policy"
    ] == "Balanced"
    await extension(server, peers, "SillyTavern-1", namespaces=("/llm",))
    await extension(server, peers, "SillyTavern-2", namespaces=("/llm",))
    clients = [await connect(server, peers, f"web{i}") for i in range(1, 4)]
    assignments = (await boss.call("/rooms", "GET_ASSIGNMENTS"))["assignments"]
    loads = {}
    for c in clients:
        got = (await c.call("/rooms", "GET_ASSIGNMENTS_FOR_ROOM", {"roomName": c.identity}))[
            "assignments"
        ]
        assert len(got) == 1 and got == assignments[c.identity]
        loads[got[0]] = loads.get(got[0], 0) + 1
    assert sorted(loads.values()) == [1, 2]
    # Manual: only in Manual mode, only connected rooms and extensions
    no = await boss.call(
        "/rooms",
        "ASSIGN_EXTENSION_TO_CLIENT",
        {"clientRoom": "web1", "extensions": ["SillyTavern-1"]},
    )
    assert no["message"] == "Manual assignment is only allowed in Manual mode"
    await boss.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Manual"})
    web1 = clients[0]
    assert (await web1.next("/rooms", "AVAILABLE_EXTENSIONS", lambda p: p["extensions"] == [])) == {
        "extensions": []
    }
    ack = await boss.call(
        "/rooms",
        "ASSIGN_EXTENSION_TO_CLIENT",
        {"clientRoom": "web1", "extensions": ["SillyTavern-2"]},
    )
    assert ack["status"] == "ok"
    assert (await web1.next("/rooms", "AVAILABLE_EXTENSIONS")) == {"extensions": ["SillyTavern-2"]}
    missing = await boss.call(
        "/rooms",
        "ASSIGN_EXTENSION_TO_CLIENT",
        {"clientRoom": "web1", "extensions": ["SillyTavern-9"]},
    )
    assert missing["message"] == "Extension not found: SillyTavern-9"
    nobody = await boss.call(
        "/rooms", "ASSIGN_EXTENSION_TO_CLIENT", {"clientRoom": "ghost", "extensions": []}
    )
    assert nobody["message"] == "Client room not found"
    # the documented client example asks with its clientId
    alias = await web1.call("/rooms", "GET_ASSIGNMENTS_FOR_ROOM", {"roomName": "web1"})
    assert alias["assignments"] == ["SillyTavern-2"]
    assert (await web1.call("/rooms", "GET_ASSIGNMENTS_FOR_ROOM"))["assignments"] == [
        "SillyTavern-2"
    ]


async def test_connected_lists_are_for_admins_and_extensions(server, peers):
    boss = await admin(server, peers)
    ext = await extension(server, peers)
    web = await connect(server, peers, "web")
    for peer in (boss, ext):
        assert (await peer.call("/rooms", "GET_CONNECTED_EXTENSIONS"))["extensions"] == [
            "SillyTavern-1"
        ]
        assert (await peer.call("/rooms", "GET_CONNECTED_CLIENT_ROOMS"))["clientRooms"] == ["web"]
    assert (await web.call("/rooms", "GET_CONNECTED_EXTENSIONS"))["message"] == "Unauthorized"
    assert (await web.call("/rooms", "GET_CONNECTION_POLICY"))["policy"] == "Free"
