"""PostgreSQL implementation of :class:`Store` (asyncpg, a connection pool).

Several server processes and the CLI share one database. Reads run on any
pooled connection at once; a process's writes run one at a time in call
order (as on SQLite), each returning after its transaction committed. Writes
that change who may connect (trust, keys, identities) send a ``NOTIFY`` in
the same transaction; a dedicated listening connection turns other processes'
notifications into :meth:`changed_elsewhere`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

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
from newage.settings import redact_url
from newage.store.pg_audit import PgAuditTable
from newage.store.pg_history import PgHistory
from newage.store.pg_keys import PgKeyTables
from newage.store.pg_listen import CHANNEL, ChangeListener, consume
from newage.store.pg_migrations import migrate

PING_TIMEOUT = 2.0  # /readyz must answer 503 for a dead database, not hang
PENDING_COLUMNS = "request_id, ext, room, requester, mode, kind, output_id, text, owner"


def _count(status: str) -> int:
    """Rows touched, from a command status such as ``DELETE 3``."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


class PostgresStore(PgKeyTables, PgAuditTable, PgHistory, Store):
    shared = True

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._ping: asyncio.Future[Any] | None = None
        self._writing = asyncio.Lock()
        # our own notifications carry this, so they are not taken for others'
        self._token = uuid.uuid4().hex
        self._listener = ChangeListener(url, self._token)

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r})"

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        where = redact_url(self.url)
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, timeout=10
            )
            async with self._pool.acquire() as conn:
                await migrate(conn, where)
            await self._listener.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._listener.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (TimeoutError, Exception):
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        # One write at a time, in call order, as on SQLite: callers rely on a
        # write that starts after another one landing after it (a pending
        # answer settled while its insertion is committing must stay deleted).
        async with self._writing, self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def _notify(self, conn: asyncpg.Connection) -> None:
        """Tell the other processes, when this transaction commits."""
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._token)

    async def _exec(self, sql: str, *args: Any) -> int:
        """One autocommitted write; returns the number of rows changed."""
        async with self._writing:
            return _count(await self.pool.execute(sql, *args))

    async def _exec_notify(self, sql: str, *args: Any) -> int:
        async with self._tx() as conn:
            count = _count(await conn.execute(sql, *args))
            if count:
                await self._notify(conn)
        return count

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        return list(await self.pool.fetch(sql, *args))

    async def _one(self, sql: str, *args: Any) -> Any:
        return await self.pool.fetchrow(sql, *args)

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        if self._ping is not None and not self._ping.done():
            return False  # the last one still hangs: no pile of stuck queries
        self._ping = asyncio.ensure_future(self._pool.fetchval("SELECT 1"))
        # not wait_for: cancelling a query on a hung server waits for the server
        done, _ = await asyncio.wait({self._ping}, timeout=PING_TIMEOUT)
        if not done:
            self._ping.add_done_callback(consume)
            self._ping.cancel()
            return False
        return not self._ping.exception() and self._ping.result() == 1

    async def changed_elsewhere(self) -> bool:
        return await self._listener.poll()

    # ------------------------------------------------------------------ trust
    _TRUST_COLS = "client_id, kind, trusted, password_hash, remember_me, created_at, updated_at"

    @staticmethod
    def _trust(row: Any) -> TrustEntry:
        return TrustEntry(
            client_id=row[0],
            kind=ClientKind(row[1]),
            trusted=row[2],
            password_hash=row[3],
            remember_me=row[4],
            created_at=row[5],
            updated_at=row[6],
        )

    @staticmethod
    def _trust_params(e: TrustEntry) -> tuple[Any, ...]:
        return (
            e.client_id,
            e.kind.value,
            e.trusted,
            e.password_hash,
            e.remember_me,
            e.created_at,
            e.updated_at,
        )

    async def get_trust(self, client_id: str) -> TrustEntry | None:
        row = await self._one(
            f"SELECT {self._TRUST_COLS} FROM trust WHERE client_id = $1", client_id
        )
        return self._trust(row) if row else None

    async def list_trust(self) -> list[TrustEntry]:
        rows = await self._all(f"SELECT {self._TRUST_COLS} FROM trust ORDER BY client_id")
        return [self._trust(r) for r in rows]

    async def put_trust(self, entry: TrustEntry) -> None:
        await self._exec_notify(
            f"INSERT INTO trust ({self._TRUST_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (client_id) DO UPDATE SET kind = excluded.kind, "
            "trusted = excluded.trusted, password_hash = excluded.password_hash, "
            "remember_me = excluded.remember_me, created_at = excluded.created_at, "
            "updated_at = excluded.updated_at",
            *self._trust_params(entry),
        )

    async def delete_trust(self, client_id: str) -> bool:
        return await self._exec_notify("DELETE FROM trust WHERE client_id = $1", client_id) > 0

    async def replace_all_trust(self, entries: Sequence[TrustEntry]) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM trust")
            await conn.executemany(
                f"INSERT INTO trust ({self._TRUST_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [self._trust_params(e) for e in entries],
            )
            await self._notify(conn)

    # ------------------------------------------------------------------ rooms
    async def load_rooms(self) -> list[RoomRecord]:
        rooms: dict[str, RoomRecord] = {}
        for name, mode, created_at, created_by, personal_of in await self._all(
            "SELECT name, mode, created_at, created_by, personal_of FROM rooms "
            "ORDER BY created_at, ord"
        ):
            rooms[name] = RoomRecord(name, RequestMode(mode), created_at, created_by, personal_of)
        for room, identity, role, joined_at in await self._all(
            "SELECT room, identity, role, joined_at FROM members ORDER BY joined_at, ord"
        ):
            if room in rooms:
                rooms[room].members[identity] = MemberRecord(identity, Role(role), joined_at)
        return list(rooms.values())

    async def create_room(self, room: RoomRecord) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO rooms (name, mode, created_at, created_by, personal_of) "
                "VALUES ($1, $2, $3, $4, $5)",
                room.name,
                room.mode.value,
                room.created_at,
                room.created_by,
                room.personal_of,
            )
            await conn.executemany(
                "INSERT INTO members (room, identity, role, joined_at) VALUES ($1, $2, $3, $4)",
                [(room.name, m.identity, m.role.value, m.joined_at) for m in room.members.values()],
            )

    async def ensure_room(self, room: RoomRecord) -> bool:
        made = await self._exec(
            "INSERT INTO rooms (name, mode, created_at, created_by, personal_of) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            room.name,
            room.mode.value,
            room.created_at,
            room.created_by,
            room.personal_of,
        )
        return made > 0

    async def delete_room(self, name: str) -> None:
        async with self._tx() as conn:
            # members, messages and the guest queue go by the foreign keys' cascade
            await conn.execute("DELETE FROM manual_assignments WHERE client_room = $1", name)
            await conn.execute("DELETE FROM rooms WHERE name = $1", name)

    async def set_room_mode(self, name: str, mode: RequestMode) -> None:
        await self._exec("UPDATE rooms SET mode = $1 WHERE name = $2", mode.value, name)

    async def put_members(self, room: str, members: Iterable[MemberRecord]) -> None:
        rows = [(room, m.identity, m.role.value, m.joined_at) for m in members]
        async with self._tx() as conn:
            await conn.executemany(
                "INSERT INTO members (room, identity, role, joined_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (room, identity) DO UPDATE SET role = excluded.role",
                rows,
            )

    async def remove_member(self, room: str, identity: str) -> None:
        await self._exec("DELETE FROM members WHERE room = $1 AND identity = $2", room, identity)

    # ------------------------------------------------------------------ mutes
    async def load_mutes(self) -> list[MuteRecord]:
        rows = await self._all(
            "SELECT identity, muted_until, muted_by, room, duration FROM mutes "
            "ORDER BY identity, room"
        )
        return [MuteRecord(r[0], r[1], r[2], r[3] or None, r[4]) for r in rows]

    async def put_mute(self, mute: MuteRecord) -> None:
        await self._exec(
            "INSERT INTO mutes (identity, room, muted_until, muted_by, duration) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (identity, room) DO UPDATE SET "
            "muted_until = excluded.muted_until, muted_by = excluded.muted_by, "
            "duration = excluded.duration",
            mute.identity,
            mute.room or "",
            mute.muted_until,
            mute.muted_by,
            mute.duration,
        )

    async def delete_mute(self, identity: str, room: str | None) -> bool:
        deleted = await self._exec(
            "DELETE FROM mutes WHERE identity = $1 AND room = $2", identity, room or ""
        )
        return deleted > 0

    # ------------------------------------------------------------------ meta
    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = $1", key)
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._exec(
            "INSERT INTO meta (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value,
        )

    async def load_manual_assignments(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for room, ext in await self._all(
            "SELECT client_room, extension FROM manual_assignments ORDER BY client_room, position"
        ):
            result.setdefault(room, []).append(ext)
        return result

    async def set_manual_assignment(self, client_room: str, extensions: Sequence[str]) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM manual_assignments WHERE client_room = $1", client_room)
            await conn.executemany(
                "INSERT INTO manual_assignments (client_room, position, extension) "
                "VALUES ($1, $2, $3)",
                [(client_room, i, ext) for i, ext in enumerate(extensions)],
            )

    async def list_static_mappings(self) -> list[StaticMapping]:
        rows = await self._all(
            "SELECT url_path, target, created_at FROM static_mappings ORDER BY url_path"
        )
        return [StaticMapping(*r) for r in rows]

    async def put_static_mapping(self, mapping: StaticMapping) -> None:
        await self._exec(
            "INSERT INTO static_mappings (url_path, target, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (url_path) DO UPDATE SET target = excluded.target, "
            "created_at = excluded.created_at",
            mapping.url_path,
            mapping.target,
            mapping.created_at,
        )

    # ------------------------------------------------------------------ guest queues
    async def queue_add(self, room: str, message_id: str) -> None:
        await self._exec(
            "INSERT INTO guest_queue (room, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            room,
            message_id,
        )

    async def queue_take(self, room: str) -> list[StoredMessage]:
        async with self._tx() as conn:
            # the queue's rows are locked first, so two takers never both get them
            rows = await conn.fetch(
                "WITH taken AS (DELETE FROM guest_queue WHERE room = $1 "
                "RETURNING message_id, queued_at) "
                "SELECT m.seq, m.room, m.kind, m.body FROM taken t "
                "JOIN messages m ON m.room = $1 AND m.message_id = t.message_id "
                "ORDER BY t.queued_at",
                room,
            )
        return [self._msg(r) for r in rows]

    async def queue_clear(self, room: str) -> None:
        await self._exec("DELETE FROM guest_queue WHERE room = $1", room)

    # ------------------------------------------------------------------ pending answers
    async def pending_put(self, answers: Sequence[PendingAnswer]) -> None:
        async with self._tx() as conn:
            # a replaced answer moves to the end, as SQLite's INSERT OR REPLACE does
            await conn.executemany(
                "DELETE FROM pending_answers WHERE request_id = $1 AND ext = $2",
                [(a.request_id, a.ext) for a in answers],
            )
            await conn.executemany(
                "INSERT INTO pending_answers (request_id, ext, room, requester, "
                "mode, kind, output_id, text, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        async with self._tx() as conn:
            await conn.executemany(
                "UPDATE pending_answers SET output_id = $1, text = $2 "
                "WHERE request_id = $3 AND ext = $4",
                [(t.output_id, t.text, t.request_id, t.ext) for t in texts],
            )

    async def pending_done(self, request_id: str, ext: str) -> None:
        await self._exec(
            "DELETE FROM pending_answers WHERE request_id = $1 AND ext = $2", request_id, ext
        )

    async def pending_all(self) -> list[PendingAnswer]:
        rows = await self._all(f"SELECT {PENDING_COLUMNS} FROM pending_answers ORDER BY ord")
        return [PendingAnswer(*row) for row in rows]

    async def pending_claim(
        self, owner: str, *, of: str | None = None, alive: Collection[str] = ()
    ) -> list[PendingAnswer]:
        # one UPDATE: a second claimer waits on the row locks, then finds the
        # rows' owner changed and takes none of them
        param: str | list[str]
        if of is not None:
            where, param = "owner = $2", of
        else:
            where, param = "owner <> ALL($2::text[])", list(alive)
        rows = await self._all(
            f"WITH taken AS (UPDATE pending_answers SET owner = $1 WHERE {where} "
            f"RETURNING {PENDING_COLUMNS}, ord) "
            f"SELECT {PENDING_COLUMNS} FROM taken ORDER BY ord",
            owner,
            param,
        )
        return [PendingAnswer(*row) for row in rows]
