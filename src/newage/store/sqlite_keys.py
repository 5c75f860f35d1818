"""The keys and identities tables of the SQLite store (a part of ``SQLiteStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import aiosqlite

from newage.domain.ports.records import IdentityRecord, KeyRecord


class KeyTables:
    if TYPE_CHECKING:  # provided by SQLiteStore

        def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

        async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...

        async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    # ------------------------------------------------------------------ keys
    _KEY_COLS = "client_id, hash, fingerprint, created_at, last_used_at, issued"

    @staticmethod
    def _key(row: Any) -> KeyRecord:
        return KeyRecord(row[0], row[1], row[2], row[3], row[4], bool(row[5]))

    async def get_key(self, client_id: str) -> KeyRecord | None:
        row = await self._one(
            f"SELECT {self._KEY_COLS} FROM client_keys WHERE client_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (client_id,),
        )
        return self._key(row) if row else None

    async def list_keys(self, client_id: str | None = None) -> list[KeyRecord]:
        where, params = ("WHERE client_id = ?", [client_id]) if client_id else ("", [])
        rows = await self._all(
            f"SELECT {self._KEY_COLS} FROM client_keys {where} "
            "ORDER BY client_id, created_at, rowid",
            params,
        )
        return [self._key(r) for r in rows]

    async def put_key(
        self, record: KeyRecord, *, replace: bool = True, keep: int | None = None
    ) -> list[str]:
        async with self._tx() as w:
            if replace:
                async with w.execute(
                    "SELECT fingerprint FROM client_keys WHERE client_id = ?", (record.client_id,)
                ) as cur:
                    dropped = [r[0] for r in await cur.fetchall()]
                await w.execute("DELETE FROM client_keys WHERE client_id = ?", (record.client_id,))
            else:
                dropped = []
            await w.execute(
                f"INSERT OR REPLACE INTO client_keys ({self._KEY_COLS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.client_id,
                    record.hash,
                    record.fingerprint,
                    record.created_at,
                    None,
                    int(record.issued),
                ),
            )
            if keep is not None and not replace:
                async with w.execute(
                    "SELECT fingerprint FROM client_keys WHERE client_id = ? "
                    "ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?",
                    (record.client_id, keep),
                ) as cur:
                    dropped = [r[0] for r in await cur.fetchall()]
                await w.executemany(
                    "DELETE FROM client_keys WHERE client_id = ? AND fingerprint = ?",
                    [(record.client_id, fp) for fp in dropped],
                )
        return [fp for fp in dropped if fp != record.fingerprint]

    async def delete_key(self, client_id: str, fingerprint: str | None = None) -> bool:
        sql = "DELETE FROM client_keys WHERE client_id = ?"
        params: tuple[str, ...] = (client_id,)
        if fingerprint is not None:
            sql += " AND fingerprint = ?"
            params = (client_id, fingerprint)
        return await self._exec(sql, params) > 0

    async def touch_key(self, client_id: str, fingerprint: str, when: str) -> None:
        await self._exec(
            "UPDATE client_keys SET last_used_at = ? WHERE client_id = ? AND fingerprint = ?",
            (when, client_id, fingerprint),
        )

    # ------------------------------------------------------------------ identities
    async def claim_identity(self, identity: str, client_id: str, when: str) -> str:
        async with self._tx() as w:
            await w.execute(
                "INSERT OR IGNORE INTO identities (identity, client_id, claimed_at) "
                "VALUES (?, ?, ?)",
                (identity, client_id, when),
            )
            async with w.execute(
                "SELECT client_id FROM identities WHERE identity = ?", (identity,)
            ) as cur:
                row = await cur.fetchone()
        return str(row[0]) if row else client_id

    async def identity_owner(self, identity: str) -> str | None:
        row = await self._one("SELECT client_id FROM identities WHERE identity = ?", (identity,))
        return str(row[0]) if row else None

    async def list_identities(self) -> list[IdentityRecord]:
        rows = await self._all(
            "SELECT identity, client_id, claimed_at FROM identities ORDER BY identity"
        )
        return [IdentityRecord(*r) for r in rows]

    async def release_identity(self, identity: str) -> bool:
        return await self._exec("DELETE FROM identities WHERE identity = ?", (identity,)) > 0
