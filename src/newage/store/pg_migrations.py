"""PostgreSQL schema migrations, tracked in the ``schema_version`` table.

Numbered from 1 in list order, as the SQLite ones; the first step is the
schema SQLite reached in its own six. Never edit a released step: append.
Serial ``ord`` columns stand in for SQLite's ``rowid`` where the order of
insertion is part of the contract (rooms, members, keys, pending answers).
"""

from __future__ import annotations

import asyncpg

# pg_advisory_lock key: any constant unique to newage ("newage" in ASCII)
MIGRATION_LOCK = 0x6E6577616765

PG_MIGRATIONS: list[str] = [
    # 1: the schema of SQLite's migrations 1-6
    """
    CREATE TABLE trust (
        client_id     TEXT PRIMARY KEY,
        kind          TEXT NOT NULL,
        trusted       BOOLEAN NOT NULL,
        password_hash TEXT,
        remember_me   BOOLEAN NOT NULL DEFAULT FALSE,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE TABLE client_keys (
        client_id    TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        hash         TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        last_used_at TEXT,
        issued       BOOLEAN NOT NULL DEFAULT FALSE,
        ord          BIGSERIAL NOT NULL,
        PRIMARY KEY (client_id, fingerprint)
    );
    CREATE TABLE identities (
        identity   TEXT PRIMARY KEY,
        client_id  TEXT NOT NULL,
        claimed_at TEXT NOT NULL
    );
    CREATE INDEX identities_by_client ON identities(client_id);
    CREATE TABLE rooms (
        name        TEXT PRIMARY KEY,
        mode        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        created_by  TEXT,
        personal_of TEXT,
        ord         BIGSERIAL NOT NULL
    );
    CREATE TABLE members (
        room      TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        identity  TEXT NOT NULL,
        role      TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        ord       BIGSERIAL NOT NULL,
        PRIMARY KEY (room, identity)
    );
    CREATE INDEX members_by_identity ON members(identity);
    CREATE TABLE mutes (
        identity    TEXT NOT NULL,
        room        TEXT NOT NULL DEFAULT '',
        muted_until TEXT NOT NULL,
        muted_by    TEXT NOT NULL,
        duration    INTEGER,
        PRIMARY KEY (identity, room)
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE manual_assignments (
        client_room TEXT NOT NULL,
        position    INTEGER NOT NULL,
        extension   TEXT NOT NULL,
        PRIMARY KEY (client_room, position)
    );
    CREATE TABLE static_mappings (
        url_path   TEXT PRIMARY KEY,
        target     TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE messages (
        seq         BIGSERIAL PRIMARY KEY,
        room        TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        message_id  TEXT NOT NULL,
        response_id TEXT,
        kind        TEXT NOT NULL,
        ts          TEXT NOT NULL,
        body        BYTEA NOT NULL
    );
    CREATE INDEX messages_by_room ON messages(room, seq);
    CREATE INDEX messages_by_room_time ON messages(room, ts);
    CREATE INDEX messages_by_id ON messages(room, message_id);
    CREATE INDEX messages_by_response ON messages(room, response_id)
        WHERE response_id IS NOT NULL;
    CREATE TABLE guest_queue (
        room       TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        message_id TEXT NOT NULL,
        queued_at  BIGSERIAL NOT NULL,
        PRIMARY KEY (room, message_id)
    );
    CREATE TABLE pending_answers (
        request_id TEXT NOT NULL,
        ext        TEXT NOT NULL,
        room       TEXT NOT NULL,
        requester  TEXT,
        mode       TEXT NOT NULL,
        kind       TEXT NOT NULL,
        output_id  TEXT,
        text       TEXT NOT NULL DEFAULT '',
        ord        BIGSERIAL NOT NULL,
        PRIMARY KEY (request_id, ext)
    );
    CREATE TABLE audit (
        id      BIGSERIAL PRIMARY KEY,
        at      TEXT NOT NULL,
        level   TEXT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit(at);
    """,
    # 2: SQLite's 7: who owes each answer (a cluster node's id)
    """
    ALTER TABLE pending_answers ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    CREATE INDEX pending_answers_by_owner ON pending_answers(owner);
    """,
]


async def migrate(conn: asyncpg.Connection, where: str) -> None:
    """Bring the schema up to date. Two processes starting at once queue on
    the advisory lock, so the second one finds the work done."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        if version > len(PG_MIGRATIONS):
            raise RuntimeError(
                f"{where}: schema version {version} is newer than this server "
                f"({len(PG_MIGRATIONS)}); upgrade newage"
            )
        for number, script in enumerate(PG_MIGRATIONS[version:], start=version + 1):
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
