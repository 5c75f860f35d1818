"""Throw-away PostgreSQL databases on the loopback server (trust auth, user postgres).

Each test session (each xdist worker) gets its own databases, named
``newage_test_<random>``; all are dropped at the end, their leftover
connections terminated first.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg

ADMIN_URL = os.environ.get("NEWAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES_KEPT = ("schema_version",)


def url_of(database: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def _run(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to the end from sync code, even inside a running loop
    (session fixtures are first asked for by async ones)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


class PgDatabases:
    def __init__(self) -> None:
        self.prefix = f"newage_test_{secrets.token_hex(4)}"
        self.made: list[str] = []

    def create(self) -> str:
        """A new empty database; its URL."""
        name = f"{self.prefix}_{len(self.made)}" if self.made else self.prefix
        _run(self._admin(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return url_of(name)

    def drop_all(self) -> None:
        for name in self.made:
            _run(
                self._admin(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
                    f'DROP DATABASE IF EXISTS "{name}"',
                )
            )
        self.made.clear()

    @staticmethod
    async def _admin(*statements: str) -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=10)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()


async def empty_tables(url: str) -> None:
    """Remove every row (the schema stays): one database serves many tests."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        names = [
            r[0]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if r[0] not in TABLES_KEPT
        ]
        if names:
            await conn.execute(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


async def sql(url: str, statement: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()
