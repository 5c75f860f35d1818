"""The keys and identities tables in PostgreSQL (a part of ``PostgresStore``).

Every change here may decide who is connected, so it notifies the other
processes in the same transaction (``touch_key`` excepted: it only records use).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import asyncpg

from newage.domain.ports.records import IdentityRecord, KeyRecord


class PgKeyTables:
    if TYPE_CHECKING:  # provided by PostgresStore

        def _tx(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...

        async def _notify(self, conn: asyncpg.Connection) -> None: ...

        async def _exec(self, sql: str, *args: Any) -> int: ...

        async def _exec_notify(self, sql: str, *args: Any) -> int: ...

        async def _all(self, sql: str, *args: Any) -> list[Any]: ...

        async def _one(self, sql: str, *args: Any) -> Any: ...

    # ------------------------------------------------------------------ keys
    _KEY_COLS = "client_id, hash, fingerprint, created_at, last_used_at, issued"

    @staticmethod
    def _key(row: Any) -> KeyRecord:
        return KeyRecord(row[0], row[1], row[2], row[3], row[4], row[5])

    async def get_key(self, client_id: str) -> KeyRecord | None:
        row = await self._one(
            f"SELECT {self._KEY_COLS} FROM client_keys WHERE client_id = $1 "
            "ORDER BY created_at DESC, ord DESC LIMIT 1",
            client_id,
        )
        return self._key(row) if row else None

    async def list_keys(self, client_id: str | None = None) -> list[KeyRecord]:
        where, args = ("WHERE client_id = $1", [client_id]) if client_id else ("", [])
        rows = await self._all(
            f"SELECT {self._KEY_COLS} FROM client_keys {where} ORDER BY client_id, created_at, ord",
            *args,
        )
        return [self._key(r) for r in rows]

    async def put_key(
        self, record: KeyRecord, *, replace: bool = True, keep: int | None = None
    ) -> list[str]:
        gone: list[Any] = []
        async with self._tx() as conn:
            if replace:
                gone = await conn.fetch(
                    "WITH gone AS (DELETE FROM client_keys WHERE client_id = $1 "
                    "RETURNING fingerprint, ord) SELECT fingerprint FROM gone ORDER BY ord",
                    record.client_id,
                )
            else:
                # a re-used fingerprint is a new key: it moves to the end
                await conn.execute(
                    "DELETE FROM client_keys WHERE client_id = $1 AND fingerprint = $2",
                    record.client_id,
                    record.fingerprint,
                )
            await conn.execute(
                f"INSERT INTO client_keys ({self._KEY_COLS}) VALUES ($1, $2, $3, $4, NULL, $5)",
                record.client_id,
                record.hash,
                record.fingerprint,
                record.created_at,
                record.issued,
            )
            if keep is not None and not replace:
                gone = await conn.fetch(
                    "WITH gone AS (DELETE FROM client_keys WHERE client_id = $1 AND fingerprint IN "
                    "(SELECT fingerprint FROM client_keys WHERE client_id = $1 "
                    "ORDER BY created_at DESC, ord DESC OFFSET $2) "
                    "RETURNING fingerprint, created_at, ord) "
                    "SELECT fingerprint FROM gone ORDER BY created_at DESC, ord DESC",
                    record.client_id,
                    keep,
                )
            await self._notify(conn)
        return [r[0] for r in gone if r[0] != record.fingerprint]

    async def delete_key(self, client_id: str, fingerprint: str | None = None) -> bool:
        if fingerprint is None:
            return (
                await self._exec_notify("DELETE FROM client_keys WHERE client_id = $1", client_id)
                > 0
            )
        return (
            await self._exec_notify(
                "DELETE FROM client_keys WHERE client_id = $1 AND fingerprint = $2",
                client_id,
                fingerprint,
            )
            > 0
        )

    async def touch_key(self, client_id: str, fingerprint: str, when: str) -> None:
        await self._exec(
            "UPDATE client_keys SET last_used_at = $1 WHERE client_id = $2 AND fingerprint = $3",
            when,
            client_id,
            fingerprint,
        )

    # ------------------------------------------------------------------ identities
    async def claim_identity(self, identity: str, client_id: str, when: str) -> str:
        async with self._tx() as conn:
            claimed = await conn.fetchval(
                "INSERT INTO identities (identity, client_id, claimed_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (identity) DO NOTHING RETURNING client_id",
                identity,
                client_id,
                when,
            )
            if claimed is not None:
                await self._notify(conn)
                return str(claimed)
            owner = await conn.fetchval(
                "SELECT client_id FROM identities WHERE identity = $1", identity
            )
        return str(owner) if owner is not None else client_id

    async def identity_owner(self, identity: str) -> str | None:
        row = await self._one("SELECT client_id FROM identities WHERE identity = $1", identity)
        return str(row[0]) if row else None

    async def list_identities(self) -> list[IdentityRecord]:
        rows = await self._all(
            "SELECT identity, client_id, claimed_at FROM identities ORDER BY identity"
        )
        return [IdentityRecord(*r) for r in rows]

    async def release_identity(self, identity: str) -> bool:
        return await self._exec_notify("DELETE FROM identities WHERE identity = $1", identity) > 0
