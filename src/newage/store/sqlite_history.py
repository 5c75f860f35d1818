"""Chat history in the SQLite store (a part of ``SQLiteStore``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import aiosqlite

from newage.domain.ports.store import MessageKind, StoredMessage
from newage.store.bodies import decode_message, encode_body

_MAX_IN = 500  # SQLite host-parameter headroom for IN (...) lists


class SQLiteHistory:
    if TYPE_CHECKING:  # provided by SQLiteStore
        _lock: asyncio.Lock

        @property
        def _writer(self) -> aiosqlite.Connection: ...

        def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

        async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...

        async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @staticmethod
    def _msg(row: Any) -> StoredMessage:
        return decode_message(row[0], row[1], row[2], row[3])

    async def append_message(self, room: str, kind: MessageKind, body: dict[str, Any]) -> int:
        async with self._lock:
            cur = await self._writer.execute(
                "INSERT INTO messages (room, message_id, response_id, kind, ts, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    room,
                    body["messageId"],
                    body.get("responseId"),
                    kind,
                    body.get("timestamp", ""),
                    encode_body(kind, body),
                ),
            )
            seq = cur.lastrowid
            await cur.close()
        assert seq is not None
        return int(seq)

    async def get_messages(self, room: str, ids: Sequence[str]) -> list[StoredMessage]:
        found: list[StoredMessage] = []
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            found += [
                self._msg(r)
                for r in await self._all(
                    f"SELECT seq, room, kind, body FROM messages WHERE room = ? AND "
                    f"(message_id IN ({marks}) OR response_id IN ({marks})) ORDER BY seq",
                    (room, *chunk, *chunk),
                )
            ]
        return found

    async def update_message(self, room: str, seq: int, body: dict[str, Any]) -> None:
        await self._exec(
            "UPDATE messages SET body = ? WHERE room = ? AND seq = ?",
            (encode_body("response" if body.get("isResponse") else "request", body), room, seq),
        )

    async def delete_messages(self, room: str, ids: Sequence[str]) -> list[str]:
        removed: list[str] = []
        async with self._tx() as w:
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                where = f"room = ? AND (message_id IN ({marks}) OR response_id IN ({marks}))"
                params = (room, *chunk, *chunk)
                async with w.execute(
                    f"SELECT message_id FROM messages WHERE {where} ORDER BY seq",
                    params,
                ) as cur:
                    removed += [r[0] for r in await cur.fetchall()]
                await w.execute(f"DELETE FROM messages WHERE {where}", params)
        return removed

    async def clear_messages(self, room: str, kinds: Sequence[MessageKind]) -> int:
        if not kinds:
            return 0
        marks = ",".join("?" * len(kinds))
        return await self._exec(
            f"DELETE FROM messages WHERE room = ? AND kind IN ({marks})",
            (room, *kinds),
        )

    async def count_messages(self, room: str) -> int:
        row = await self._one("SELECT COUNT(*) FROM messages WHERE room = ?", (room,))
        return int(row[0]) if row else 0

    async def page_messages(self, room: str, after_seq: int, limit: int) -> list[StoredMessage]:
        rows = await self._all(
            "SELECT seq, room, kind, body FROM messages WHERE room = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (room, after_seq, limit),
        )
        return [self._msg(r) for r in rows]

    async def latest_messages(self, room: str, limit: int) -> list[StoredMessage]:
        rows = await self._all(
            "SELECT seq, room, kind, body FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?",
            (room, limit),
        )
        return [self._msg(r) for r in reversed(rows)]

    async def messages_before(self, room: str, before_seq: int, limit: int) -> list[StoredMessage]:
        rows = await self._all(
            "SELECT seq, room, kind, body FROM messages WHERE room = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT ?",
            (room, before_seq, limit),
        )
        return [self._msg(r) for r in reversed(rows)]

    async def messages_since(
        self, room: str, since: str, after_seq: int, limit: int
    ) -> list[StoredMessage]:
        rows = await self._all(
            "SELECT seq, room, kind, body FROM messages WHERE room = ? AND ts > ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (room, since, after_seq, limit),
        )
        return [self._msg(r) for r in rows]


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _MAX_IN):
        yield items[i : i + _MAX_IN]
