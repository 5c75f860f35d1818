"""``/debug``: debug mode, server status and log reading (admins, extensions).

The connection is already gated (domain/auth.py); each event checks again
because ``networkSafe`` may have been switched on since the socket connected.
"""

from __future__ import annotations

from typing import Any

from newage.domain.presence import SocketRef
from newage.domain.principal import require_sensitive
from newage.protocol.functions import ReadLogIn
from newage.protocol.names import Ev, Namespace
from newage.realtime.base import OK, BaseNamespace, on


class DebugNamespace(BaseNamespace):
    def _gate(self, ref: SocketRef) -> None:
        require_sensitive(ref.principal, self.app.live.current.network_safe, allow_extension=True)

    @on(Ev.TOGGLE_DEBUG_MODE)
    async def toggle_debug_mode(self, ref: SocketRef, data: Any) -> dict[str, Any]:
        self._gate(ref)
        value = await self.app.debug.toggle()
        await self.app.outbox.emit(Namespace.DEBUG, Ev.DEBUG_MODE_CHANGED, {"debugMode": value})
        return {**OK, "debugMode": value}

    @on(Ev.SERVER_STATUS)
    async def server_status(self, ref: SocketRef, data: Any) -> dict[str, Any]:
        self._gate(ref)
        return {**OK, "serverStatus": self.app.debug.server_status()}

    @on(Ev.READ_LOG, model=ReadLogIn)
    async def read_log(self, ref: SocketRef, data: ReadLogIn) -> dict[str, Any]:
        self._gate(ref)
        return await self.app.debug.read_log(data.filename, data.level, data.page, data.page_size)
