"""``/debug``: debug mode, live server status (issue 6 fills this in)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from newage.settings import LiveSettings


class DebugService:
    def __init__(
        self, live: LiveSettings, logs_dir: Path, status: Callable[[], dict[str, Any]]
    ) -> None:
        self.live = live
        self.logs_dir = logs_dir
        self.status = status  # the app's live counters (connections, rooms, ...)

    async def toggle(self) -> bool:
        """Flip debugMode, switch the live log level, persist; return the new value."""
        raise NotImplementedError

    def server_status(self) -> dict[str, Any]:
        raise NotImplementedError

    async def read_log(
        self, filename: Any, level: Any, page: Any, page_size: Any
    ) -> dict[str, Any]:
        raise NotImplementedError
