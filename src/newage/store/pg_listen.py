"""Other processes' changes, heard on a dedicated PostgreSQL connection.

Writes to trust, keys and identities send ``NOTIFY newage_changes`` with the
writing process's token; each process listens and ignores its own token.
A LISTEN connection can die silently (a failover, a NAT dropping an idle
flow), so it is probed now and then and replaced when it does not answer;
notifications sent while nobody listened are lost, so a new connection
counts as a change.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from newage.logs import log

CHANNEL = "newage_changes"
RELISTEN_INTERVAL = 1.0  # between attempts to open a lost listening connection
PROBE_INTERVAL = 10.0  # between checks that the listening connection answers
PROBE_TIMEOUT = 2.0


def consume(task: asyncio.Future[Any]) -> None:
    """Read an abandoned query's outcome, so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()


class ChangeListener:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.changed = False
        self._conn: asyncpg.Connection | None = None
        self._relisten_at = 0.0
        self._probe_at = 0.0

    async def start(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=5)
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._probe_at = time.monotonic() + PROBE_INTERVAL

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self.token:
            self.changed = True

    async def poll(self) -> bool:
        """True once after another process's change (or a reconnection)."""
        conn = self._conn
        now = time.monotonic()
        if conn is None or conn.is_closed():
            self._conn = None
            if now >= self._relisten_at:
                self._relisten_at = now + RELISTEN_INTERVAL
                try:
                    await self.start()
                except Exception as exc:
                    log.warning("store: cannot listen for changes (%s); retrying", exc)
                else:
                    log.info("store: listening for changes again")
                    self.changed = True
        elif now >= self._probe_at:
            self._probe_at = now + PROBE_INTERVAL
            await self._probe(conn)
        changed, self.changed = self.changed, False
        return changed

    async def _probe(self, conn: asyncpg.Connection) -> None:
        probe = asyncio.ensure_future(conn.fetchval("SELECT 1"))
        # not wait_for: cancelling a query on a silent connection waits for it
        done, _ = await asyncio.wait({probe}, timeout=PROBE_TIMEOUT)
        if done and probe.exception() is None:
            return
        probe.add_done_callback(consume)
        log.warning("store: the connection listening for changes is gone; reopening it")
        conn.terminate()
        self._conn = None
