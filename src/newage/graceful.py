"""uvicorn, with one step added to its shutdown: before it asks the open
connections to close, the app tells every requester that its request failed
(otherwise a SIGTERM would close their sockets first and only the history
would know), and a SIGTERM ends the process with status 0."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable

import uvicorn

from newage.logs import log

CLOSING_TIMEOUT = 5.0


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, closing: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self.closing = closing

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await asyncio.wait_for(self.closing(), CLOSING_TIMEOUT)
        except Exception:
            log.exception("failing the open requests at shutdown failed")
        await super().shutdown(sockets)
        # uvicorn re-raises a captured SIGTERM once it is done, which makes
        # the exit status "killed by signal"; a clean stop exits 0
        self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]
