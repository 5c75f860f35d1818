"""The store a server or the CLI uses: one place reads ``databaseUrl``, so
every process given the same settings opens the same store."""

from __future__ import annotations

from pathlib import Path

from newage.domain.ports.store import Store
from newage.settings import Settings


def make_store(settings: Settings, sqlite_path: Path) -> Store:
    """The store the settings name, not opened yet: PostgreSQL when
    ``databaseUrl`` is set, else SQLite at ``sqlite_path`` (the data directory's)."""
    if settings.database_url:
        from newage.store.postgres import PostgresStore

        return PostgresStore(settings.database_url, pool_size=settings.database_pool_size)
    from newage.store.sqlite import SQLiteStore

    return SQLiteStore(sqlite_path, synchronous=settings.sqlite_synchronous)


def describe_store(settings: Settings, sqlite_path: Path) -> str:
    """Where the store is, for logs and ``check-config`` (never a password)."""
    if settings.database_url:
        from newage.settings import redact_url

        return redact_url(settings.database_url)
    return str(sqlite_path)
