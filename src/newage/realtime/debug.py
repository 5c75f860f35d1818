"""``/debug``: debug mode, server status and log reading (admins)."""

from __future__ import annotations

from typing import Any

from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import require_admin
from newage.domain.ports.records import AuditFilter
from newage.errors import not_found
from newage.protocol.acks import (
    OK,
    AuditPage,
    DebugMode,
    LogPage,
    OneRequest,
    RequestsPage,
    Series,
    ServerStatus,
)
from newage.protocol.functions import ReadLogIn
from newage.protocol.monitoring import GetAuditIn, GetRequestsIn, GetSeriesIn
from newage.protocol.names import Ev
from newage.realtime.base import BaseNamespace, on


class DebugNamespace(BaseNamespace):
    @on(Ev.TOGGLE_DEBUG_MODE)
    async def toggle_debug_mode(self, ref: SocketRef, data: Any) -> DebugMode:
        value = await self.services.debug.toggle(ref.principal)
        return {**OK, "debugMode": value}

    @on(Ev.SERVER_STATUS)
    async def server_status(self, ref: SocketRef, data: Any) -> ServerStatus:
        return {**OK, "serverStatus": self.services.debug.server_status(ref.principal)}

    @on(Ev.READ_LOG, model=ReadLogIn)
    async def read_log(self, ref: SocketRef, data: ReadLogIn) -> LogPage:
        return await self.services.debug.read_log(
            ref.principal, data.filename, data.level, data.page, data.page_size, data.search
        )

    # ------------------------------------------------------------------ monitor views (admins)
    def _admin(self, ref: SocketRef) -> None:
        require_admin(ref.principal, self.services.live.current.network_safe)

    @on(Ev.GET_REQUESTS, model=GetRequestsIn)
    async def get_requests(self, ref: SocketRef, data: GetRequestsIn) -> RequestsPage | OneRequest:
        self._admin(ref)
        log = self.services.request_log
        if data.request_id is not None:
            found = log.get(data.request_id)
            if found is None:
                raise not_found(f"No request {data.request_id} is known (finished long ago?).")
            return {**OK, "request": found}
        items, total = log.page(data.state, data.search, data.offset, data.limit)
        return {**OK, "requests": items, "total": total}

    @on(Ev.GET_METRICS_SERIES, model=GetSeriesIn)
    async def get_series(self, ref: SocketRef, data: GetSeriesIn) -> Series:
        self._admin(ref)
        tracker = self.services.tracker
        extensions = [
            {
                "identity": ext,
                "state": "busy" if tracker.in_flight(ext) else "idle",
                "queueLength": tracker.in_flight(ext),
                **self.services.request_log.extension_stats(ext),
            }
            for ext in self.services.router.online()
        ]
        return {**OK, **self.services.series.view(data.since), "extensions": extensions}

    @on(Ev.GET_AUDIT_LOG, model=GetAuditIn)
    async def get_audit(self, ref: SocketRef, data: GetAuditIn) -> AuditPage:
        self._admin(ref)
        entries, total = await self.services.audit.query(
            AuditFilter(
                data.level, data.action, data.actor, data.search, data.before_id, data.limit
            )
        )
        return {**OK, "entries": [e.public() for e in entries], "total": total}
