"""More of the storage contract, on SQLite and PostgreSQL (the ``store``
fixture runs each test on both): what a second implementation could get
subtly wrong (orders, cascades, concurrent writers, ``keep``, audit filters)."""

from __future__ import annotations

import asyncio

from newage.domain.ports.records import (
    AuditEntry,
    AuditFilter,
    KeyRecord,
    MemberRecord,
    PendingAnswer,
    PendingText,
    RoomRecord,
    StaticMapping,
    TrustEntry,
)
from newage.protocol.names import ClientKind, RequestMode, Role


def ids(messages):
    return [m.body["messageId"] for m in messages]


async def room(store, name="r", *members):
    await store.create_room(
        RoomRecord(
            name,
            RequestMode.IMMEDIATE,
            "t",
            members[0] if members else None,
            None,
            {m: MemberRecord(m, Role.MASTER, "t") for m in members},
        )
    )


async def test_paging_is_per_room_in_append_order(store):
    for name in ("b", "a", "c"):  # same created_at: the order of creation decides
        await room(store, name)
    assert [r.name for r in await store.load_rooms()] == ["b", "a", "c"]
    for i in range(12):
        # interleaved rooms: the sequence is shared, each room's order is its own
        await store.append_message("a", "request", {"messageId": f"a{i}", "timestamp": "t"})
        await store.append_message("b", "request", {"messageId": f"b{i}", "timestamp": "t"})
    first = await store.page_messages("a", 0, 5)
    assert ids(first) == ["a0", "a1", "a2", "a3", "a4"]
    assert [m.room for m in first] == ["a"] * 5
    assert ids(await store.page_messages("a", first[-1].seq, 100)) == [
        f"a{i}" for i in range(5, 12)
    ]
    latest = await store.latest_messages("b", 4)
    assert ids(latest) == ["b8", "b9", "b10", "b11"]
    assert ids(await store.messages_before("b", latest[0].seq, 3)) == ["b5", "b6", "b7"]
    assert await store.messages_before("b", first[0].seq, 3) == []
    assert await store.count_messages("a") == 12 and await store.count_messages("nope") == 0
    seqs = [m.seq for m in await store.page_messages("a", 0, 100)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 12


async def test_lookups_by_message_and_response_id(store):
    await room(store)
    await store.append_message("r", "request", {"messageId": "m1", "timestamp": "t"})
    seq = await store.append_message(
        "r",
        "response",
        {"messageId": "m2", "responseId": "p2", "timestamp": "t", "data": "x", "message": "x"},
    )
    found = await store.get_messages("r", ["p2", "m1", "ghost"])
    assert ids(found) == ["m1", "m2"]
    assert found[1].kind == "response" and found[1].body["data"] == "x"
    assert await store.get_messages("other", ["m1"]) == []
    assert await store.get_messages("r", []) == []
    await store.update_message("r", seq, {"messageId": "m2", "isResponse": True, "data": "y"})
    assert (await store.get_messages("r", ["m2"]))[0].body["data"] == "y"
    assert await store.delete_messages("r", []) == []
    assert await store.clear_messages("r", []) == 0


async def test_deleting_a_room_takes_everything_of_it(store):
    await room(store, "r", "a")
    await room(store, "keep", "a")
    await store.put_members("r", [MemberRecord("b", Role.GUEST, "t2")])
    await store.append_message("r", "request", {"messageId": "m1", "timestamp": "t"})
    await store.append_message("keep", "request", {"messageId": "k1", "timestamp": "t"})
    await store.queue_add("r", "m1")
    await store.set_manual_assignment("r", ["ext1"])
    await store.delete_room("r")
    assert [r.name for r in await store.load_rooms()] == ["keep"]
    assert await store.count_messages("r") == 0 and await store.count_messages("keep") == 1
    assert await store.load_manual_assignments() == {}
    # a room of the same name starts empty
    await room(store, "r")
    assert (await store.load_rooms())[-1].members == {}
    assert await store.queue_take("r") == []


async def test_members_roles_and_mode(store):
    await room(store, "r", "a")
    await store.put_members(
        "r", [MemberRecord("b", Role.MASTER, "t2"), MemberRecord("a", Role.MANAGER, "t")]
    )
    await store.remove_member("r", "ghost")
    await store.set_room_mode("r", RequestMode.HOST_SUBMIT)
    loaded = (await store.load_rooms())[0]
    assert loaded.mode is RequestMode.HOST_SUBMIT
    assert [(m.identity, m.role) for m in loaded.members.values()] == [
        ("a", Role.MANAGER),
        ("b", Role.MASTER),
    ]
    await store.remove_member("r", "a")
    assert list((await store.load_rooms())[0].members) == ["b"]


async def test_concurrent_writers_lose_nothing(store):
    await room(store)

    async def writer(n: int) -> list[int]:
        return [
            await store.append_message("r", "request", {"messageId": f"w{n}-{i}", "timestamp": "t"})
            for i in range(10)
        ]

    seqs = [s for batch in await asyncio.gather(*(writer(n) for n in range(8))) for s in batch]
    assert len(set(seqs)) == 80 and await store.count_messages("r") == 80
    # each writer's messages keep its order
    stored = ids(await store.page_messages("r", 0, 1000))
    for n in range(8):
        mine = [m for m in stored if m.startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}" for i in range(10)]
    # racing claims of one identity: exactly one owner
    owners = await asyncio.gather(*(store.claim_identity("id", f"c{n}", "t") for n in range(8)))
    assert len(set(owners)) == 1 and await store.identity_owner("id") == owners[0]
    # racing trust writes and meta writes end in one of the written values
    await asyncio.gather(
        *(
            store.put_trust(TrustEntry("x", ClientKind.CLIENT, True, f"h{n}", False, "t", "t"))
            for n in range(8)
        )
    )
    assert (await store.get_trust("x")).password_hash in {f"h{n}" for n in range(8)}


async def test_keys_keep_newest_and_reused_fingerprints(store):
    dropped = []
    for n in range(5):
        dropped.append(
            await store.put_key(
                KeyRecord("c", "h", f"fp{n}", "same-time", issued=True), replace=False, keep=2
            )
        )
    # equal timestamps: insertion order decides which are newest
    assert dropped == [[], [], ["fp0"], ["fp1"], ["fp2"]]
    assert [k.fingerprint for k in await store.list_keys("c")] == ["fp3", "fp4"]
    assert (await store.get_key("c")).fingerprint == "fp4"
    # the same fingerprint again is a new key, not a duplicate: it becomes the newest
    assert (
        await store.put_key(KeyRecord("c", "h2", "fp3", "same-time"), replace=False, keep=2) == []
    )
    assert [(k.fingerprint, k.hash, k.issued) for k in await store.list_keys("c")] == [
        ("fp4", "h", True),
        ("fp3", "h2", False),
    ]
    # without keep nothing is dropped; replace drops all the others
    await store.put_key(KeyRecord("c", "h", "fp5", "later"), replace=False)
    await store.put_key(KeyRecord("d", "h", "other", "t"))
    assert sorted(await store.put_key(KeyRecord("c", "h", "admin", "t9"))) == ["fp3", "fp4", "fp5"]
    assert [(k.client_id, k.fingerprint) for k in await store.list_keys()] == [
        ("c", "admin"),
        ("d", "other"),
    ]
    await store.touch_key("c", "admin", "used")
    assert (await store.list_keys("c"))[0].public()["lastUsedAt"] == "used"
    assert not await store.delete_key("c", "ghost")
    assert await store.get_key("ghost") is None


async def test_trust_replace_and_fields(store):
    entry = TrustEntry("web", ClientKind.SILLYTAVERN, False, "$2b$x", True, "c", "u")
    await store.put_trust(entry)
    assert await store.get_trust("web") == entry
    entry.trusted = True
    await store.put_trust(entry)
    assert (await store.get_trust("web")).trusted
    assert not await store.delete_trust("ghost")
    await store.replace_all_trust([])
    assert await store.list_trust() == []


async def test_audit_filters_paging_and_pruning(store):
    def entry(at, level, actor, action, target=None, **details):
        return AuditEntry(at, level, actor, action, target, details)

    await store.add_audit(
        [
            entry("2026-01-01", "info", "admin", "trust.add", "bot"),
            entry("2026-01-02", "warn", "10.0.0.1", "login.refused", "bot", reason="bad key"),
            entry("2026-01-03", "error", "admin", "trust.remove", "web_1"),
            entry("2026-01-04", "info", "admin", "trustee.odd", None, note="100%"),
            entry("2026-01-05", "info", "cli", "keys.create", "x", note="Value_Z"),
        ]
    )
    everything, total = await store.list_audit(AuditFilter())
    assert total == 5 and everything[0].action == "keys.create"
    ids_ = [e.id for e in everything]
    assert ids_ == sorted(ids_, reverse=True)
    assert everything[-1].public()["details"] == {}
    warn, n = await store.list_audit(AuditFilter(level="warn"))
    assert n == 2 and {e.level for e in warn} == {"warn", "error"}
    family, n = await store.list_audit(AuditFilter(action="trust"))
    assert n == 2 and {e.action for e in family} == {"trust.add", "trust.remove"}
    assert (await store.list_audit(AuditFilter(actor="cli")))[1] == 1
    # search covers details; % and _ are literal characters
    assert [e.action for e in (await store.list_audit(AuditFilter(search="100%")))[0]] == [
        "trustee.odd"
    ]
    assert (await store.list_audit(AuditFilter(search="web_1")))[1] == 1
    assert (await store.list_audit(AuditFilter(search="eb_")))[1] == 1
    assert (await store.list_audit(AuditFilter(search="b_d")))[1] == 0
    assert (await store.list_audit(AuditFilter(search="bad key")))[0][0].details == {
        "reason": "bad key"
    }
    # paging: before_id narrows the page, not the total
    page, n = await store.list_audit(AuditFilter(before_id=ids_[1], limit=2))
    assert n == 5 and [e.id for e in page] == ids_[2:4]
    assert await store.prune_audit("2026-01-02", keep=10) == 1
    assert await store.prune_audit("2000", keep=2) == 2
    assert [e.action for e in (await store.list_audit(AuditFilter()))[0]] == [
        "keys.create",
        "trustee.odd",
    ]


async def test_pending_answers_survive_in_order(store):
    def answer(request_id, ext):
        return PendingAnswer(request_id, ext, "r", "web#1", "Immediate", "llm")

    await store.pending_put([answer("q1", "st1"), answer("q1", "st2")])
    await store.pending_put([answer("q2", "st1")])
    # several in one call; an answer no longer pending changes nothing
    texts = [
        ("q1", "st2", "out-1", "so far"),
        ("q2", "st1", "out-2", "x"),
        ("gone", "st1", "o", "y"),
    ]
    await store.pending_texts([PendingText(*t) for t in texts])
    assert [(a.request_id, a.ext, a.output_id, a.text) for a in await store.pending_all()] == [
        ("q1", "st1", None, ""),
        ("q1", "st2", "out-1", "so far"),
        ("q2", "st1", "out-2", "x"),
    ]
    await store.pending_put([answer("q1", "st1")])  # put again: fresh, and last
    await store.pending_done("q1", "st2")
    await store.pending_done("ghost", "st1")
    assert [(a.request_id, a.ext, a.text) for a in await store.pending_all()] == [
        ("q2", "st1", "x"),
        ("q1", "st1", ""),
    ]


async def test_ensure_room_inserts_a_built_in_room_once(store):
    """Nodes starting at once on a new store all try to make monitor-room."""
    made = await asyncio.gather(
        *(
            store.ensure_room(
                RoomRecord("monitor-room", RequestMode.IMMEDIATE, f"t{i}", None, None)
            )
            for i in range(5)
        )
    )
    assert sorted(made) == [False, False, False, False, True]
    assert [r.name for r in await store.load_rooms()] == ["monitor-room"]
    await room(store, "kept", "alice")
    assert not await store.ensure_room(RoomRecord("kept", RequestMode.HOST_SUBMIT, "x", None, None))
    [kept] = [r for r in await store.load_rooms() if r.name == "kept"]
    assert kept.mode is RequestMode.IMMEDIATE and list(kept.members) == ["alice"]


async def test_pending_answers_keep_their_owner_and_are_claimed_once(store):
    """A cluster node's open answers carry its id; a surviving node claims a
    dead node's (or every dead owner's) answers, and of claimers racing for
    the same answers each answer goes to exactly one."""

    def answer(request_id, owner):
        return PendingAnswer(request_id, "st", "r", "web", "Immediate", "user", owner=owner)

    await store.pending_put(
        [answer("a1", "node-a"), answer("b1", "node-b"), answer("a2", "node-a")]
    )
    await store.pending_put([answer("old", "")])  # written before owners existed
    await store.pending_texts([PendingText("a2", "st", "out", "half")])
    assert [(a.request_id, a.owner) for a in await store.pending_all()] == [
        ("a1", "node-a"),
        ("b1", "node-b"),
        ("a2", "node-a"),
        ("old", ""),
    ]
    claimed = await store.pending_claim("node-c", of="node-a")
    assert [(a.request_id, a.owner, a.text) for a in claimed] == [
        ("a1", "node-c", ""),
        ("a2", "node-c", "half"),
    ]
    assert await store.pending_claim("node-b", of="node-a") == []  # nothing left to claim
    # a starting node takes what no live node owes: node-b and node-c live on
    orphans = await store.pending_claim("node-d", alive=["node-b", "node-c", "node-d"])
    assert [(a.request_id, a.owner) for a in orphans] == [("old", "node-d")]
    assert {(a.request_id, a.owner) for a in await store.pending_all()} == {
        ("a1", "node-c"),
        ("b1", "node-b"),
        ("a2", "node-c"),
        ("old", "node-d"),
    }
    # no live node named: everything is claimed (a single process starting)
    assert len(await store.pending_claim("", alive=[])) == 4
    # racing claimers: every answer once
    await store.pending_put([answer(f"x{i}", "dead") for i in range(50)])
    races = await asyncio.gather(*(store.pending_claim(f"s{n}", of="dead") for n in range(4)))
    won = [a.request_id for race in races for a in race]
    assert sorted(won) == sorted(f"x{i}" for i in range(50))


async def test_guest_queue_order_and_take(store):
    await room(store)
    await room(store, "other")
    for i in range(3):
        await store.append_message("r", "request", {"messageId": f"m{i}", "timestamp": "t"})
    await store.append_message("other", "request", {"messageId": "o", "timestamp": "t"})
    for message_id in ("m2", "m0", "m2", "m1"):  # a second add is ignored
        await store.queue_add("r", message_id)
    await store.queue_add("other", "o")
    assert ids(await store.queue_take("r")) == ["m2", "m0", "m1"]
    assert await store.queue_take("r") == []
    await store.queue_clear("other")
    assert await store.queue_take("other") == []


async def test_meta_assignments_and_static_mappings(store):
    assert await store.get_meta("k") is None
    await store.set_meta("k", "1")
    await store.set_meta("k", "2")
    assert await store.get_meta("k") == "2"
    await store.set_manual_assignment("room", ["b", "a"])
    await store.set_manual_assignment("room", ["c", "b", "a"])
    assert await store.load_manual_assignments() == {"room": ["c", "b", "a"]}
    await store.put_static_mapping(StaticMapping("/x", "a.txt", "t"))
    await store.put_static_mapping(StaticMapping("/x", "b.txt", "t2"))
    assert await store.list_static_mappings() == [StaticMapping("/x", "b.txt", "t2")]


async def test_ping_and_changed_elsewhere_start_quiet(store):
    assert await store.ping()
    await store.changed_elsewhere()  # primes
    await store.put_trust(TrustEntry("mine", ClientKind.CLIENT, True, None, False, "t", "t"))
    assert not await store.changed_elsewhere()  # our own writes are not news


async def test_writes_land_in_call_order(store):
    """A write begun after another one (not awaited yet) lands after it: the
    server settles a pending answer while its insertion may still commit."""
    answer = PendingAnswer("q", "st", "r", None, "Immediate", "llm")
    for _ in range(5):
        put = asyncio.create_task(store.pending_put([answer]))
        await asyncio.sleep(0)  # the insertion has begun
        await store.pending_done("q", "st")
        await put
        assert await store.pending_all() == []
    await room(store)
    writes = [store.append_message("r", "request", {"messageId": "m", "timestamp": "t"})]
    writes.append(store.delete_messages("r", ["m"]))
    _, deleted = await asyncio.gather(*writes)
    assert deleted == ["m"] and await store.count_messages("r") == 0
