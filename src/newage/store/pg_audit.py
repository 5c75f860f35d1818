"""The audit table in PostgreSQL (a part of ``PostgresStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from newage.domain.ports.records import AuditEntry, AuditFilter
from newage.store.sqlite_audit import AUDIT_LEVELS, like_escape


class PgAuditTable:
    if TYPE_CHECKING:  # provided by PostgresStore

        def _tx(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...

        async def _all(self, sql: str, *args: Any) -> list[Any]: ...

        async def _one(self, sql: str, *args: Any) -> Any: ...

    async def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        async with self._tx() as conn:
            await conn.executemany(
                "INSERT INTO audit (at, level, actor, action, target, details) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    (e.at, e.level, e.actor, e.action, e.target, orjson.dumps(e.details).decode())
                    for e in entries
                ],
            )

    async def list_audit(self, query: AuditFilter) -> tuple[list[AuditEntry], int]:
        where: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.level in AUDIT_LEVELS:
            # a level means "this and worse", as in the log filter
            worse = [n for n, rank in AUDIT_LEVELS.items() if rank >= AUDIT_LEVELS[query.level]]
            where.append(f"level = ANY({arg(worse)}::text[])")
        if query.action:
            # "trust" matches trust.add and trust.remove
            family = arg(like_escape(query.action) + ".%")
            where.append(f"(action = {arg(query.action)} OR action ILIKE {family})")
        if query.actor:
            where.append(f"actor = {arg(query.actor)}")
        if query.search:
            # ILIKE: SQLite's LIKE ignores the case of ASCII letters
            p = arg("%" + like_escape(query.search) + "%")
            where.append(
                f"(actor ILIKE {p} OR action ILIKE {p} OR target ILIKE {p} OR details ILIKE {p})"
            )
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total_row = await self._one(f"SELECT COUNT(*) FROM audit {clause}", *args)
        total = int(total_row[0]) if total_row else 0
        if query.before_id is not None:
            clause = f"{clause} {'AND' if where else 'WHERE'} id < {arg(query.before_id)}"
        rows = await self._all(
            "SELECT id, at, level, actor, action, target, details FROM audit "
            f"{clause} ORDER BY id DESC LIMIT {arg(query.limit)}",
            *args,
        )
        entries = [
            AuditEntry(r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6]), id=r[0]) for r in rows
        ]
        return entries, total

    async def prune_audit(self, before: str, keep: int) -> int:
        async with self._tx() as conn:
            dropped = await conn.fetchval(
                "WITH gone AS (DELETE FROM audit WHERE at < $1 RETURNING 1) "
                "SELECT COUNT(*) FROM gone",
                before,
            )
            over = await conn.fetchval(
                "WITH gone AS (DELETE FROM audit WHERE id <= "
                "(SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET $1) RETURNING 1) "
                "SELECT COUNT(*) FROM gone",
                keep,
            )
        return int(dropped) + int(over)
