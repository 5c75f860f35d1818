"""The audit table of the SQLite store (a part of ``SQLiteStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import aiosqlite
import orjson

from newage.domain.ports.records import AuditEntry, AuditFilter

AUDIT_LEVELS = {"info": 0, "warn": 1, "error": 2}


class AuditTable:
    if TYPE_CHECKING:  # provided by SQLiteStore

        def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

        async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...

        async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    async def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        async with self._tx() as w:
            await w.executemany(
                "INSERT INTO audit (at, level, actor, action, target, details) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (e.at, e.level, e.actor, e.action, e.target, orjson.dumps(e.details))
                    for e in entries
                ],
            )

    async def list_audit(self, query: AuditFilter) -> tuple[list[AuditEntry], int]:
        level, action, actor, search = query.level, query.action, query.actor, query.search
        before_id, limit = query.before_id, query.limit
        where: list[str] = []
        params: list[Any] = []
        if level in AUDIT_LEVELS:
            # a level means "this and worse", as in the log filter
            worse = [name for name, n in AUDIT_LEVELS.items() if n >= AUDIT_LEVELS[level]]
            where.append(f"level IN ({', '.join('?' * len(worse))})")
            params.extend(worse)
        if action:
            # "trust" matches trust.add and trust.remove
            where.append("(action = ? OR action LIKE ? ESCAPE '\\')")
            params.extend([action, like_escape(action) + ".%"])
        if actor:
            where.append("actor = ?")
            params.append(actor)
        if search:
            pattern = "%" + like_escape(search) + "%"
            where.append(
                "(actor LIKE ? ESCAPE '\\' OR action LIKE ? ESCAPE '\\' "
                "OR target LIKE ? ESCAPE '\\' OR CAST(details AS TEXT) LIKE ? ESCAPE '\\')"
            )
            params.extend([pattern] * 4)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total_row = await self._one(f"SELECT COUNT(*) FROM audit {clause}", params)
        total = int(total_row[0]) if total_row else 0
        if before_id is not None:
            clause = f"{clause} {'AND' if where else 'WHERE'} id < ?"
            params.append(before_id)
        rows = await self._all(
            "SELECT id, at, level, actor, action, target, details FROM audit "
            f"{clause} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        entries = [
            AuditEntry(r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6]), id=r[0]) for r in rows
        ]
        return entries, total

    async def prune_audit(self, before: str, keep: int) -> int:
        async with self._tx() as w:
            cur = await w.execute("DELETE FROM audit WHERE at < ?", (before,))
            dropped = cur.rowcount
            cur = await w.execute(
                "DELETE FROM audit WHERE id <= "
                "(SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (keep,),
            )
            return int(dropped + cur.rowcount)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
