"""Schema migrations, applied in order and tracked with ``PRAGMA user_version``.

Never edit a released step: append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE trust (
        client_id     TEXT PRIMARY KEY,
        kind          TEXT NOT NULL,
        trusted       INTEGER NOT NULL,
        password_hash TEXT,
        remember_me   INTEGER NOT NULL DEFAULT 0,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE TABLE keys (
        client_id    TEXT PRIMARY KEY,
        hash         TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        last_used_at TEXT
    );
    CREATE TABLE rooms (
        name        TEXT PRIMARY KEY,
        mode        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        created_by  TEXT,
        personal_of TEXT
    );
    CREATE TABLE members (
        room      TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        identity  TEXT NOT NULL,
        role      TEXT NOT NULL,
        joined_at TEXT NOT NULL,
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
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        room        TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        message_id  TEXT NOT NULL,
        response_id TEXT,
        kind        TEXT NOT NULL,
        ts          TEXT NOT NULL,
        body        BLOB NOT NULL
    );
    CREATE INDEX messages_by_room ON messages(room, seq);
    CREATE INDEX messages_by_room_time ON messages(room, ts);
    CREATE INDEX messages_by_id ON messages(room, message_id);
    CREATE INDEX messages_by_response ON messages(room, response_id)
        WHERE response_id IS NOT NULL;
    """,
    # 2: HostSubmit guest queues (requests waiting for the master's submission)
    """
    CREATE TABLE guest_queue (
        room       TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        message_id TEXT NOT NULL,
        queued_at  INTEGER NOT NULL,
        PRIMARY KEY (room, message_id)
    );
    """,
    # 3: several live keys per clientId (a second SillyTavern tab gets its own
    # instead of revoking the first one's), and identities owned by a clientId
    """
    CREATE TABLE client_keys (
        client_id    TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        hash         TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        last_used_at TEXT,
        issued       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (client_id, fingerprint)
    );
    INSERT INTO client_keys (client_id, fingerprint, hash, created_at, last_used_at)
        SELECT client_id, fingerprint, hash, created_at, last_used_at FROM keys;
    DROP TABLE keys;
    CREATE TABLE identities (
        identity   TEXT PRIMARY KEY,
        client_id  TEXT NOT NULL,
        claimed_at TEXT NOT NULL
    );
    CREATE INDEX identities_by_client ON identities(client_id);
    """,
    # 4: a response's text stored once (``data`` is restored from ``message``
    # when read)
    """
    UPDATE messages
       SET body = CAST(json_remove(CAST(body AS TEXT), '$.data') AS BLOB)
     WHERE kind = 'response'
       AND json_valid(CAST(body AS TEXT))
       AND json_type(CAST(body AS TEXT), '$.data') = 'text'
       AND json_extract(CAST(body AS TEXT), '$.data')
           = json_extract(CAST(body AS TEXT), '$.message');
    """,
    # 5: answers owed by extensions, for closing them after a crash
    """
    CREATE TABLE pending_answers (
        request_id TEXT NOT NULL,
        ext        TEXT NOT NULL,
        room       TEXT NOT NULL,
        requester  TEXT,
        mode       TEXT NOT NULL,
        kind       TEXT NOT NULL,
        output_id  TEXT,
        text       TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (request_id, ext)
    );
    """,
    # 6: the audit trail (admin actions and security events)
    """
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      TEXT NOT NULL,
        level   TEXT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT,
        details BLOB NOT NULL
    );
    CREATE INDEX audit_by_time ON audit(at);
    """,
    # 7: who owes each answer (a cluster node's id; '' for a single process),
    # so a dead node's open answers can be closed while the others run
    """
    ALTER TABLE pending_answers ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    CREATE INDEX pending_answers_by_owner ON pending_answers(owner);
    """,
]
