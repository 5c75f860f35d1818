"""The storage contract against real databases: SQLite files and PostgreSQL.

Tests taking ``store`` run on both; the SQLite-only ones (WAL, PRAGMAs, its
migrations) take ``sqlite_store``. PostgreSQL-only checks: test_store_pg.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from newage.domain.ports.records import KeyRecord, MemberRecord, MuteRecord, RoomRecord, TrustEntry
from newage.protocol.names import ClientKind, RequestMode, Role
from newage.store.migrations import MIGRATIONS
from newage.store.sqlite import SQLiteStore


@pytest.fixture
async def sqlite_store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "db.sqlite")
    await s.open()
    yield s
    await s.close()


async def test_schema_version_wal_and_foreign_keys(sqlite_store, tmp_path):
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # re-opening runs no migration twice
    again = SQLiteStore(tmp_path / "db.sqlite")
    await again.open()
    await again.close()


async def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this server"):
        await SQLiteStore(path).open()


async def test_trust_and_keys(store):
    await store.put_trust(TrustEntry("a", ClientKind.MONITOR, True, None, False, "t", "t"))
    await store.replace_all_trust([TrustEntry("b", ClientKind.CLIENT, True, "h", True, "t", "t")])
    assert [e.client_id for e in await store.list_trust()] == ["b"]
    await store.put_key(KeyRecord("b", "$2b$hash", "fp", "t"))
    await store.touch_key("b", "fp", "later")
    assert (await store.get_key("b")).last_used_at == "later"
    assert await store.delete_key("b") and not await store.delete_key("b")


async def test_several_keys_per_client_newest_kept(store):
    for n in range(4):
        dropped = await store.put_key(
            KeyRecord("x", "$2b$h", f"fp{n}", f"t{n}", issued=True), replace=False, keep=3
        )
    assert dropped == ["fp0"]
    assert [k.fingerprint for k in await store.list_keys("x")] == ["fp1", "fp2", "fp3"]
    assert (await store.get_key("x")).fingerprint == "fp3"
    assert await store.delete_key("x", "fp2")
    assert [k.fingerprint for k in await store.list_keys("x")] == ["fp1", "fp3"]
    # an admin's key replaces them all
    await store.put_key(KeyRecord("x", "$2b$h", "admin", "t9"))
    assert [k.fingerprint for k in await store.list_keys("x")] == ["admin"]


async def test_identities_are_claimed_once(store):
    assert await store.claim_identity("web#1", "web", "t") == "web"
    assert await store.claim_identity("web#1", "evil", "t2") == "web"
    assert await store.identity_owner("web#1") == "web"
    assert [r.public() for r in await store.list_identities()] == [
        {"identity": "web#1", "clientId": "web", "claimedAt": "t"}
    ]
    assert await store.release_identity("web#1") and await store.identity_owner("web#1") is None


async def test_rooms_members_cascade(store):
    room = RoomRecord(
        "r", RequestMode.IMMEDIATE, "t", "a", None, {"a": MemberRecord("a", Role.MASTER, "t")}
    )
    await store.create_room(room)
    await store.put_members(
        "r", [MemberRecord("b", Role.GUEST, "t2"), MemberRecord("a", Role.MANAGER, "t")]
    )
    await store.append_message("r", "request", {"messageId": "m1", "timestamp": "t"})
    loaded = (await store.load_rooms())[0]
    assert {m.identity: m.role for m in loaded.members.values()} == {
        "a": Role.MANAGER,
        "b": Role.GUEST,
    }
    await store.delete_room("r")
    assert await store.load_rooms() == [] and await store.count_messages("r") == 0


async def test_history_paging_order_and_deletion(store):
    await store.create_room(RoomRecord("r", RequestMode.IMMEDIATE, "t"))
    for i in range(25):
        body = {"messageId": f"m{i}", "timestamp": f"2026-01-01T00:00:{i:02d}.000Z"}
        if i % 5 == 0:
            body["responseId"] = f"p{i}"
        await store.append_message("r", "response" if i % 5 == 0 else "request", body)
    page = await store.page_messages("r", 0, 10)
    assert [m.body["messageId"] for m in page] == [f"m{i}" for i in range(10)]
    nxt = await store.page_messages("r", page[-1].seq, 10)
    assert nxt[0].body["messageId"] == "m10"
    assert [m.body["messageId"] for m in await store.latest_messages("r", 3)] == [
        "m22",
        "m23",
        "m24",
    ]
    since = await store.messages_since("r", "2026-01-01T00:00:20.000Z", 0, 100)
    assert [m.body["messageId"] for m in since] == ["m21", "m22", "m23", "m24"]
    rest = await store.messages_since("r", "2026-01-01T00:00:20.000Z", since[1].seq, 100)
    assert [m.body["messageId"] for m in rest] == ["m23", "m24"]
    removed = await store.delete_messages("r", ["m1", "p5", "nope"])
    assert removed == ["m1", "m5"]
    assert await store.count_messages("r") == 23
    assert await store.clear_messages("r", ["response"]) == 4
    assert await store.count_messages("r") == 19


async def test_mutes_are_per_room(store):
    await store.put_mute(MuteRecord("x", "9999", "admin", None, None))
    await store.put_mute(MuteRecord("x", "2030", "m", "r1", 60))
    assert len(await store.load_mutes()) == 2
    await store.delete_mute("x", "r1")
    assert [(m.identity, m.room) for m in await store.load_mutes()] == [("x", None)]


async def test_changed_elsewhere_sees_other_processes(sqlite_store, tmp_path):
    store = sqlite_store
    assert not await store.changed_elsewhere()  # primes
    assert not await store.changed_elsewhere()
    other = sqlite3.connect(tmp_path / "db.sqlite")
    other.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    other.commit()
    other.close()
    assert await store.changed_elsewhere()
    await store.set_meta("mine", "1")  # our own writes do not count
    assert not await store.changed_elsewhere()


async def test_a_response_text_is_stored_once(sqlite_store, tmp_path):
    store = sqlite_store
    await store.create_room(RoomRecord("r", RequestMode.IMMEDIATE, "t"))
    text = "unique-answer-text " * 50
    body = {"messageId": "m1", "responseId": "p1", "isResponse": True, "data": text}
    body["message"] = text
    await store.append_message("r", "response", body)
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    raw = conn.execute("SELECT body FROM messages").fetchone()[0]
    conn.close()
    assert bytes(raw).count(b"unique-answer-text") == 50  # once, not twice
    loaded = (await store.latest_messages("r", 1))[0].body
    assert loaded == body  # both fields, as the wire has them
    edited = {**body, "data": "new", "message": "new"}
    await store.update_message("r", (await store.latest_messages("r", 1))[0].seq, edited)
    assert (await store.latest_messages("r", 1))[0].body == edited


async def test_the_migration_stores_old_responses_once(tmp_path):
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO rooms (name, mode, created_at) VALUES ('r', 'Immediate', 't')")
    rows = [
        ("m1", "response", '{"messageId":"m1","data":"twice","message":"twice"}'),
        ("m2", "response", '{"messageId":"m2","data":"a","message":"b"}'),
        ("m3", "request", '{"messageId":"m3","data":"req","message":"req"}'),
    ]
    for message_id, kind, body in rows:
        conn.execute(
            "INSERT INTO messages (room, message_id, kind, ts, body) VALUES ('r', ?, ?, 't', ?)",
            (message_id, kind, body.encode()),
        )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        conn = sqlite3.connect(path)
        raw = [bytes(r[0]) for r in conn.execute("SELECT body FROM messages ORDER BY seq")]
        conn.close()
        assert raw[0].count(b"twice") == 1 and raw[1].count(b'"a"') == 1
        assert raw[2].count(b"req") == 2  # requests are kept as the client sent them
        bodies = [m.body for m in await store.latest_messages("r", 3)]
        assert [(b["data"], b["message"]) for b in bodies] == [
            ("twice", "twice"),
            ("a", "b"),
            ("req", "req"),
        ]
    finally:
        await store.close()
