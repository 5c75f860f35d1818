"""SQLite implementation of :class:`Store` (aiosqlite, WAL).

Two connections: one writer, serialised by a lock so that a multi-statement
transaction cannot interleave with another coroutine's statements, and one
reader, which only ever sees committed data and never waits behind a write.
The CLI opens the same file from another process; WAL lets both work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from newage.domain.ports.records import (
    MemberRecord,
    MuteRecord,
    PendingAnswer,
    PendingText,
    RoomRecord,
    StaticMapping,
    TrustEntry,
)
from newage.domain.ports.store import Store, StoredMessage
from newage.protocol.names import ClientKind, RequestMode, Role
from newage.store.migrations import MIGRATIONS
from newage.store.sqlite_audit import AuditTable
from newage.store.sqlite_history import SQLiteHistory
from newage.store.sqlite_keys import KeyTables


class SQLiteStore(KeyTables, AuditTable, SQLiteHistory, Store):
    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._w: aiosqlite.Connection | None = None
        self._r: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._data_version: int | None = None

    # ------------------------------------------------------------------ lifecycle
    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._w = await self._connect()
            await self._w.execute("PRAGMA journal_mode = WAL")
            await self._migrate()
            self._r = await self._connect()
            await self._r.execute("PRAGMA query_only = ON")
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        w = self._writer
        async with self._lock:
            await w.execute("BEGIN IMMEDIATE")
            try:
                async with w.execute("PRAGMA user_version") as cur:
                    row = await cur.fetchone()
                version = int(row[0]) if row else 0
                if version > len(MIGRATIONS):
                    raise RuntimeError(
                        f"{self.path}: schema version {version} is newer than this server "
                        f"({len(MIGRATIONS)}); upgrade newage"
                    )
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in _split_sql(script):
                        await w.execute(statement)
                    await w.execute(f"PRAGMA user_version = {number}")
                await w.execute("COMMIT")
            except BaseException:
                await w.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        for conn in (self._r, self._w):
            if conn is not None:
                await conn.close()
        self._r = self._w = None

    @property
    def _writer(self) -> aiosqlite.Connection:
        if self._w is None:
            raise RuntimeError("store is not open")
        return self._w

    @property
    def _reader(self) -> aiosqlite.Connection:
        if self._r is None:
            raise RuntimeError("store is not open")
        return self._r

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        w = self._writer
        async with self._lock:
            await w.execute("BEGIN IMMEDIATE")
            try:
                yield w
            except BaseException:
                await w.execute("ROLLBACK")
                raise
            await w.execute("COMMIT")

    async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One autocommitted write; returns the number of rows changed."""
        async with self._lock:
            cur = await self._writer.execute(sql, params)
            count = cur.rowcount
            await cur.close()
            return int(count)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._reader.execute(sql, params) as cur:
            return await cur.fetchone()

    async def ping(self) -> bool:
        try:
            row = await self._one("SELECT 1")
        except Exception:
            return False
        return bool(row and row[0] == 1)

    async def changed_elsewhere(self) -> bool:
        # data_version on the writer moves only when *another* connection
        # commits; our reader never writes, so a change means another process.
        async with self._writer.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        changed = self._data_version is not None and version != self._data_version
        self._data_version = version
        return changed

    # ------------------------------------------------------------------ trust
    @staticmethod
    def _trust(row: Any) -> TrustEntry:
        return TrustEntry(
            client_id=row[0],
            kind=ClientKind(row[1]),
            trusted=bool(row[2]),
            password_hash=row[3],
            remember_me=bool(row[4]),
            created_at=row[5],
            updated_at=row[6],
        )

    _TRUST_COLS = "client_id, kind, trusted, password_hash, remember_me, created_at, updated_at"

    @staticmethod
    def _trust_params(e: TrustEntry) -> tuple[Any, ...]:
        return (
            e.client_id,
            e.kind.value,
            int(e.trusted),
            e.password_hash,
            int(e.remember_me),
            e.created_at,
            e.updated_at,
        )

    async def get_trust(self, client_id: str) -> TrustEntry | None:
        row = await self._one(
            f"SELECT {self._TRUST_COLS} FROM trust WHERE client_id = ?", (client_id,)
        )
        return self._trust(row) if row else None

    async def list_trust(self) -> list[TrustEntry]:
        rows = await self._all(f"SELECT {self._TRUST_COLS} FROM trust ORDER BY client_id")
        return [self._trust(r) for r in rows]

    async def put_trust(self, entry: TrustEntry) -> None:
        await self._exec(
            f"INSERT OR REPLACE INTO trust ({self._TRUST_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            self._trust_params(entry),
        )

    async def delete_trust(self, client_id: str) -> bool:
        return await self._exec("DELETE FROM trust WHERE client_id = ?", (client_id,)) > 0

    async def replace_all_trust(self, entries: Sequence[TrustEntry]) -> None:
        async with self._tx() as w:
            await w.execute("DELETE FROM trust")
            await w.executemany(
                f"INSERT INTO trust ({self._TRUST_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [self._trust_params(e) for e in entries],
            )

    # ------------------------------------------------------------------ rooms
    async def load_rooms(self) -> list[RoomRecord]:
        rooms: dict[str, RoomRecord] = {}
        for name, mode, created_at, created_by, personal_of in await self._all(
            "SELECT name, mode, created_at, created_by, personal_of FROM rooms ORDER BY created_at"
        ):
            rooms[name] = RoomRecord(name, RequestMode(mode), created_at, created_by, personal_of)
        for room, identity, role, joined_at in await self._all(
            "SELECT room, identity, role, joined_at FROM members ORDER BY joined_at, rowid"
        ):
            if room in rooms:
                rooms[room].members[identity] = MemberRecord(identity, Role(role), joined_at)
        return list(rooms.values())

    async def create_room(self, room: RoomRecord) -> None:
        async with self._tx() as w:
            await w.execute(
                "INSERT INTO rooms (name, mode, created_at, created_by, personal_of) "
                "VALUES (?, ?, ?, ?, ?)",
                (room.name, room.mode.value, room.created_at, room.created_by, room.personal_of),
            )
            await w.executemany(
                "INSERT INTO members (room, identity, role, joined_at) VALUES (?, ?, ?, ?)",
                [(room.name, m.identity, m.role.value, m.joined_at) for m in room.members.values()],
            )

    async def ensure_room(self, room: RoomRecord) -> bool:
        made = await self._exec(
            "INSERT OR IGNORE INTO rooms (name, mode, created_at, created_by, personal_of) "
            "VALUES (?, ?, ?, ?, ?)",
            (room.name, room.mode.value, room.created_at, room.created_by, room.personal_of),
        )
        return made > 0

    async def delete_room(self, name: str) -> None:
        async with self._tx() as w:
            await w.execute("DELETE FROM messages WHERE room = ?", (name,))
            await w.execute("DELETE FROM members WHERE room = ?", (name,))
            await w.execute("DELETE FROM manual_assignments WHERE client_room = ?", (name,))
            await w.execute("DELETE FROM rooms WHERE name = ?", (name,))

    async def set_room_mode(self, name: str, mode: RequestMode) -> None:
        await self._exec("UPDATE rooms SET mode = ? WHERE name = ?", (mode.value, name))

    async def put_members(self, room: str, members: Iterable[MemberRecord]) -> None:
        rows = [(room, m.identity, m.role.value, m.joined_at) for m in members]
        async with self._tx() as w:
            await w.executemany(
                "INSERT INTO members (room, identity, role, joined_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room, identity) DO UPDATE SET role = excluded.role",
                rows,
            )

    async def remove_member(self, room: str, identity: str) -> None:
        await self._exec("DELETE FROM members WHERE room = ? AND identity = ?", (room, identity))

    # ------------------------------------------------------------------ mutes
    async def load_mutes(self) -> list[MuteRecord]:
        rows = await self._all("SELECT identity, muted_until, muted_by, room, duration FROM mutes")
        return [MuteRecord(r[0], r[1], r[2], r[3] or None, r[4]) for r in rows]

    async def put_mute(self, mute: MuteRecord) -> None:
        await self._exec(
            "INSERT OR REPLACE INTO mutes (identity, room, muted_until, muted_by, duration) "
            "VALUES (?, ?, ?, ?, ?)",
            (mute.identity, mute.room or "", mute.muted_until, mute.muted_by, mute.duration),
        )

    async def delete_mute(self, identity: str, room: str | None) -> bool:
        deleted = await self._exec(
            "DELETE FROM mutes WHERE identity = ? AND room = ?", (identity, room or "")
        )
        return deleted > 0

    # ------------------------------------------------------------------ meta
    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    async def load_manual_assignments(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for room, ext in await self._all(
            "SELECT client_room, extension FROM manual_assignments ORDER BY client_room, position"
        ):
            result.setdefault(room, []).append(ext)
        return result

    async def set_manual_assignment(self, client_room: str, extensions: Sequence[str]) -> None:
        async with self._tx() as w:
            await w.execute("DELETE FROM manual_assignments WHERE client_room = ?", (client_room,))
            await w.executemany(
                "INSERT INTO manual_assignments (client_room, position, extension) "
                "VALUES (?, ?, ?)",
                [(client_room, i, ext) for i, ext in enumerate(extensions)],
            )

    async def list_static_mappings(self) -> list[StaticMapping]:
        rows = await self._all("SELECT url_path, target, created_at FROM static_mappings")
        return [StaticMapping(*r) for r in rows]

    async def put_static_mapping(self, mapping: StaticMapping) -> None:
        await self._exec(
            "INSERT OR REPLACE INTO static_mappings (url_path, target, created_at) "
            "VALUES (?, ?, ?)",
            (mapping.url_path, mapping.target, mapping.created_at),
        )

    # ------------------------------------------------------------------ guest queues
    async def queue_add(self, room: str, message_id: str) -> None:
        await self._exec(
            "INSERT OR IGNORE INTO guest_queue (room, message_id, queued_at) "
            "VALUES (?, ?, (SELECT COALESCE(MAX(queued_at), 0) + 1 FROM guest_queue))",
            (room, message_id),
        )

    async def queue_take(self, room: str) -> list[StoredMessage]:
        async with self._tx() as w:
            async with w.execute(
                "SELECT m.seq, m.room, m.kind, m.body FROM guest_queue q "
                "JOIN messages m ON m.room = q.room AND m.message_id = q.message_id "
                "WHERE q.room = ? ORDER BY q.queued_at",
                (room,),
            ) as cur:
                rows = await cur.fetchall()
            await w.execute("DELETE FROM guest_queue WHERE room = ?", (room,))
        return [self._msg(r) for r in rows]

    async def queue_clear(self, room: str) -> None:
        await self._exec("DELETE FROM guest_queue WHERE room = ?", (room,))

    # ------------------------------------------------------------------ pending answers
    async def pending_put(self, answers: Sequence[PendingAnswer]) -> None:
        async with self._tx() as w:
            await w.executemany(
                "INSERT OR REPLACE INTO pending_answers (request_id, ext, room, requester, "
                "mode, kind, output_id, text, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.request_id,
                        a.ext,
                        a.room,
                        a.requester,
                        a.mode,
                        a.kind,
                        a.output_id,
                        a.text,
                        a.owner,
                    )
                    for a in answers
                ],
            )

    async def pending_texts(self, texts: Sequence[PendingText]) -> None:
        async with self._tx() as w:
            await w.executemany(
                "UPDATE pending_answers SET output_id = ?, text = ? "
                "WHERE request_id = ? AND ext = ?",
                [(t.output_id, t.text, t.request_id, t.ext) for t in texts],
            )

    async def pending_done(self, request_id: str, ext: str) -> None:
        await self._exec(
            "DELETE FROM pending_answers WHERE request_id = ? AND ext = ?", (request_id, ext)
        )

    async def pending_all(self) -> list[PendingAnswer]:
        rows = await self._all(f"SELECT {PENDING_COLUMNS} FROM pending_answers ORDER BY rowid")
        return [PendingAnswer(*row) for row in rows]

    async def pending_claim(
        self, owner: str, *, of: str | None = None, alive: Collection[str] = ()
    ) -> list[PendingAnswer]:
        if of is not None:
            where, params = "owner = ?", [of]
        else:
            where, params = f"owner NOT IN ({', '.join('?' * len(alive))})", list(alive)
        # BEGIN IMMEDIATE: processes sharing the file claim one after the other
        async with self._tx() as w:
            async with w.execute(
                f"SELECT {PENDING_COLUMNS} FROM pending_answers WHERE {where} ORDER BY rowid",
                params,
            ) as cur:
                rows = await cur.fetchall()
            await w.execute(f"UPDATE pending_answers SET owner = ? WHERE {where}", [owner, *params])
        claimed = [PendingAnswer(*row) for row in rows]
        for answer in claimed:
            answer.owner = owner
        return claimed


PENDING_COLUMNS = "request_id, ext, room, requester, mode, kind, output_id, text, owner"


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
