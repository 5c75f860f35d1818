"""``/debug``: debug mode, server status and log reading (admins)."""

from __future__ import annotations

from typing import Any

from newage.domain.presence import SocketRef
from newage.protocol.functions import ReadLogIn
from newage.protocol.names import Ev
from newage.realtime.base import OK, BaseNamespace, on


class DebugNamespace(BaseNamespace):
    @on(Ev.TOGGLE_DEBUG_MODE)
    async def toggle_debug_mode(self, ref: SocketRef, data: Any) -> dict[str, Any]:
        value = await self.app.debug.toggle(ref.principal)
        return {**OK, "debugMode": value}

    @on(Ev.SERVER_STATUS)
    async def server_status(self, ref: SocketRef, data: Any) -> dict[str, Any]:
        return {**OK, "serverStatus": self.app.debug.server_status(ref.principal)}

    @on(Ev.READ_LOG, model=ReadLogIn)
    async def read_log(self, ref: SocketRef, data: ReadLogIn) -> dict[str, Any]:
        return await self.app.debug.read_log(
            ref.principal, data.filename, data.level, data.page, data.page_size
        )
