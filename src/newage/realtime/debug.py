"""``/debug``: debug mode, server status and log reading (admins)."""

from __future__ import annotations

from typing import Any, cast

from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import require_admin
from newage.domain.ops.series import extension_rows
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
            found = await log.find(data.request_id)
            if found is None:
                raise not_found(f"No request {data.request_id} is known (finished long ago?).")
            return {**OK, "request": found}
        items, total, missing = await log.page_all(data.state, data.search, data.offset, data.limit)
        page: RequestsPage = {**OK, "requests": items, "total": total}
        if missing:
            page["unanswered"] = missing
        return page

    @on(Ev.GET_METRICS_SERIES, model=GetSeriesIn)
    async def get_series(self, ref: SocketRef, data: GetSeriesIn) -> Series:
        self._admin(ref)
        s = self.services
        here = extension_rows(s.tracker, s.router, s.request_log)
        view, extensions, missing = await s.series.view_all(data.since, here)
        out = cast(Series, {**OK, **view, "extensions": extensions})
        if missing:
            out["unanswered"] = missing
        return out

    @on(Ev.GET_AUDIT_LOG, model=GetAuditIn)
    async def get_audit(self, ref: SocketRef, data: GetAuditIn) -> AuditPage:
        self._admin(ref)
        entries, total = await self.services.audit.query(
            AuditFilter(
                data.level, data.action, data.actor, data.search, data.before_id, data.limit
            )
        )
        return {**OK, "entries": [e.public() for e in entries], "total": total}
