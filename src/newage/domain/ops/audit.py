"""The audit trail: admin actions and security events, with who, what, when.

Domain operations call :func:`record` (trust, keys, rooms, mutes, modes,
policy, settings, identities, cancels); the actor is whoever the current
event is handled for, bound by :meth:`Audit.acting` where the event is
dispatched, so the operations need no extra argument. What the server
does on its own (timeouts, settings read from the file) is recorded
through the service itself, with the actor ``server``.

Entries are logged at once at their level and written to the store in
batches (a flood of refused logins must not become a flood of
transactions); the table is bounded by ``auditRetentionDays`` and
``auditMaxEntries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from newage.clock import iso_from_epoch, iso_now
from newage.domain.ports.records import AuditEntry, AuditFilter, AuditLevel
from newage.domain.ports.store import Store
from newage.errors import ErrorCode, NewAgeError
from newage.logs import log
from newage.settings import LiveSettings, Settings, redact_url

LEVELS: dict[str, int] = {"info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
PENDING_CAP = 10_000  # entries waiting for the next flush; beyond that they are counted only
SERVER_ACTOR = "server"


@dataclass(frozen=True, slots=True)
class _Acting:
    audit: Audit
    actor: str


_acting: ContextVar[_Acting | None] = ContextVar("newage_audit_acting", default=None)


class Audit:
    def __init__(self, store: Store, live: LiveSettings) -> None:
        self.store = store
        self.live = live
        self.pending: list[AuditEntry] = []
        self.dropped = 0
        # a reader's flush must wait for a batch another flush is writing
        self._flushing = asyncio.Lock()

    @contextlib.contextmanager
    def acting(self, actor: str) -> Iterator[None]:
        token = _acting.set(_Acting(self, actor))
        try:
            yield
        finally:
            _acting.reset(token)

    def add(
        self,
        action: str,
        target: str | None = None,
        *,
        actor: str | None = None,
        level: AuditLevel = "info",
        **details: Any,
    ) -> AuditEntry:
        acting = _acting.get()
        who = actor or (acting.actor if acting is not None else SERVER_ACTOR)
        entry = AuditEntry(iso_now(), level, who, action, target, details)
        extra = " ".join(f"{k}={v}" for k, v in details.items())
        suffix = f" ({extra})" if extra else ""
        log.log(LEVELS[level], "audit: %s %s %s%s", who, action, target or "-", suffix)
        if len(self.pending) < PENDING_CAP:
            self.pending.append(entry)
        else:
            self.dropped += 1
        return entry

    def refused(self, error: NewAgeError, who: str, peer: str, where: str) -> None:
        """A refused login (a lockout when the login limiter said no)."""
        locked = error.code is ErrorCode.RATE_LIMITED
        self.add(
            "login.locked" if locked else "login.refused",
            who,
            actor=peer or "unknown peer",
            level="warn",
            namespace=where,
            reason=error.message,
        )

    def origin_refused(self, origin: str, peer: str) -> None:
        self.add("origin.refused", repr(origin), actor=peer or "unknown peer", level="warn")

    def settings_changed(self, previous: Settings, current: Settings) -> None:
        if self.live.elsewhere:
            return  # the cluster node that took the change recorded it
        before, after = previous.to_file_dict(), current.to_file_dict()
        changed = sorted(k for k in after if before.get(k) != after.get(k))
        if changed:
            # the database URL may carry its password
            values = {
                k: (redact_url(str(after[k])) if k == "databaseUrl" else str(after[k]))[:100]
                for k in changed
            }
            self.add("settings.change", ", ".join(changed), values=values)

    async def flush(self) -> int:
        async with self._flushing:
            if not self.pending:
                return 0
            batch, self.pending = self.pending, []
            try:
                await self.store.add_audit(batch)
            except Exception:
                self.pending = batch + self.pending  # the next round tries again
                raise
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            self.add("audit.dropped", None, level="warn", count=dropped)
        return len(batch)

    async def prune(self) -> int:
        settings = self.live.current
        before = iso_from_epoch(time.time() - settings.audit_retention_days * 86400)
        return await self.store.prune_audit(before, settings.audit_max_entries)

    async def query(self, query: AuditFilter) -> tuple[list[AuditEntry], int]:
        """Newest first, and the number of matches."""
        await self.flush()  # what was just done is in the answer
        return await self.store.list_audit(query)


def record(
    action: str,
    target: str | None = None,
    *,
    level: AuditLevel = "info",
    actor: str | None = None,
    **details: Any,
) -> None:
    """Record with the audit of the event being handled. Work the server
    does on its own records through its :class:`Audit` directly."""
    acting = _acting.get()
    if acting is not None:
        acting.audit.add(action, target, actor=actor, level=level, **details)
