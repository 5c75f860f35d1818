"""Chat history in PostgreSQL (a part of ``PostgresStore``).

``seq`` is one sequence for all rooms: it orders each room's messages and
is the paging cursor, as in SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import asyncpg

from newage.domain.ports.store import MessageKind, StoredMessage
from newage.store.bodies import decode_message, encode_body

_COLS = "seq, room, kind, body"


class PgHistory:
    if TYPE_CHECKING:  # provided by PostgresStore

        def _tx(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...

        async def _exec(self, sql: str, *args: Any) -> int: ...

        async def _all(self, sql: str, *args: Any) -> list[Any]: ...

        async def _one(self, sql: str, *args: Any) -> Any: ...

    @staticmethod
    def _msg(row: Any) -> StoredMessage:
        return decode_message(row[0], row[1], row[2], row[3])

    async def append_message(self, room: str, kind: MessageKind, body: dict[str, Any]) -> int:
        async with self._tx() as conn:
            seq = await conn.fetchval(
                "INSERT INTO messages (room, message_id, response_id, kind, ts, body) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
                room,
                body["messageId"],
                body.get("responseId"),
                kind,
                body.get("timestamp", ""),
                encode_body(kind, body),
            )
        return int(seq)

    async def get_messages(self, room: str, ids: Sequence[str]) -> list[StoredMessage]:
        rows = await self._all(
            f"SELECT {_COLS} FROM messages WHERE room = $1 AND "
            "(message_id = ANY($2::text[]) OR response_id = ANY($2::text[])) ORDER BY seq",
            room,
            list(ids),
        )
        return [self._msg(r) for r in rows]

    async def update_message(self, room: str, seq: int, body: dict[str, Any]) -> None:
        await self._exec(
            "UPDATE messages SET body = $1 WHERE room = $2 AND seq = $3",
            encode_body("response" if body.get("isResponse") else "request", body),
            room,
            seq,
        )

    async def delete_messages(self, room: str, ids: Sequence[str]) -> list[str]:
        async with self._tx() as conn:
            rows = await conn.fetch(
                "WITH gone AS (DELETE FROM messages WHERE room = $1 AND "
                "(message_id = ANY($2::text[]) OR response_id = ANY($2::text[])) "
                "RETURNING seq, message_id) SELECT message_id FROM gone ORDER BY seq",
                room,
                list(ids),
            )
        return [r[0] for r in rows]

    async def clear_messages(self, room: str, kinds: Sequence[MessageKind]) -> int:
        if not kinds:
            return 0
        return await self._exec(
            "DELETE FROM messages WHERE room = $1 AND kind = ANY($2::text[])", room, list(kinds)
        )

    async def count_messages(self, room: str) -> int:
        row = await self._one("SELECT COUNT(*) FROM messages WHERE room = $1", room)
        return int(row[0]) if row else 0

    async def page_messages(self, room: str, after_seq: int, limit: int) -> list[StoredMessage]:
        rows = await self._all(
            f"SELECT {_COLS} FROM messages WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            room,
            after_seq,
            limit,
        )
        return [self._msg(r) for r in rows]

    async def latest_messages(self, room: str, limit: int) -> list[StoredMessage]:
        rows = await self._all(
            f"SELECT {_COLS} FROM messages WHERE room = $1 ORDER BY seq DESC LIMIT $2",
            room,
            limit,
        )
        return [self._msg(r) for r in reversed(rows)]

    async def messages_before(self, room: str, before_seq: int, limit: int) -> list[StoredMessage]:
        rows = await self._all(
            f"SELECT {_COLS} FROM messages WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            room,
            before_seq,
            limit,
        )
        return [self._msg(r) for r in reversed(rows)]

    async def messages_since(
        self, room: str, since: str, after_seq: int, limit: int
    ) -> list[StoredMessage]:
        rows = await self._all(
            f"SELECT {_COLS} FROM messages WHERE room = $1 AND ts > $2 AND seq > $3 "
            "ORDER BY seq LIMIT $4",
            room,
            since,
            after_seq,
            limit,
        )
        return [self._msg(r) for r in rows]
