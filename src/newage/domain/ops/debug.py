"""``/debug``: debug mode, live server status and log reading (docs/protocol.md).

Debug mode is the persisted ``debugMode`` setting; while it is on the live
log level is ``debug``, otherwise the ``logLevel`` setting. A change made
any other way (the settings file through ``saveJsonToFile``) switches the
level too.
"""

from __future__ import annotations

import asyncio
import math
import re
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newage import logs
from newage.domain.identity.principal import Principal, require_sensitive
from newage.domain.ops.logread import LEVEL_OPTIONS, LogReader
from newage.domain.ports.delivery import Outbox
from newage.errors import ErrorCode, NewAgeError, bad_request, not_found
from newage.logs import LOG_FILES
from newage.protocol.acks import OK, LogPage
from newage.protocol.names import Ev, Namespace
from newage.protocol.outbound import DebugModeChanged
from newage.settings import LiveSettings, Settings, SettingsError

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_SEARCH = 200
_JS_INT = re.compile(r"\s*([+-]?[0-9]+)")
HUGE = 10**18


def js_parse_int(value: Any) -> int | None:
    """JavaScript's ``parseInt(value, 10)``; None for NaN."""
    if isinstance(value, bool) or value is None:
        return None  # String(true) is 'true': NaN
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    elif isinstance(value, str):
        text = value
    else:
        return None
    m = _JS_INT.match(text)
    if m is None:
        return None
    digits = m.group(1)
    if len(digits.lstrip("+-")) > 18:
        # far beyond any page; also keeps int() off its digit limit
        return -HUGE if digits.startswith("-") else HUGE
    return int(digits)


def memory() -> dict[str, int]:
    """Resident memory of this process, in bytes."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    key = "rssBytes" if name == "VmRSS" else "peakRssBytes"
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if "peakRssBytes" not in out:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peakRssBytes"] = peak if sys.platform == "darwin" else peak * 1024
    out.setdefault("rssBytes", out["peakRssBytes"])
    return out


class DebugService:
    """Every operation is for admins, and only over loopback
    while ``networkSafe`` is on; checked per call because the setting may
    have been switched on since the socket connected."""

    def __init__(
        self,
        live: LiveSettings,
        logs_dir: Path,
        status: Callable[[], dict[str, Any]],
        outbox: Outbox,
    ) -> None:
        self.live = live
        self.outbox = outbox
        self.logs_dir = logs_dir
        self.status = status  # the app's live counters (connections, rooms, ...)
        self.created_at = time.time()
        self.logs = LogReader(logs_dir)
        live.on_change(self._settings_changed)

    @staticmethod
    def level_for(settings: Settings) -> str:
        return "debug" if settings.debug_mode else settings.log_level

    def _settings_changed(self, previous: Settings, current: Settings) -> None:
        """However debugMode changes (TOGGLE_DEBUG_MODE or the settings file
        over FUNCTION_CALL), the level follows and every /debug socket hears."""
        if self.level_for(previous) != self.level_for(current):
            logs.set_level(self.level_for(current))
        # a change another node took: its notice reached every /debug socket
        if previous.debug_mode != current.debug_mode and not self.live.elsewhere:
            notice: DebugModeChanged = {"debugMode": current.debug_mode}
            self.outbox.emit(Namespace.DEBUG, Ev.DEBUG_MODE_CHANGED, notice)

    def _gate(self, actor: Principal) -> None:
        require_sensitive(actor, self.live.current.network_safe, allow_extension=False)

    async def toggle(self, actor: Principal) -> bool:
        """Flip debugMode, switch the live log level, persist, tell every
        ``/debug`` socket; return the new value."""
        self._gate(actor)
        value = not self.live.current.debug_mode
        try:
            # the settings listener above switches the level and tells /debug
            await self.live.apply({"debugMode": value})
        except SettingsError as exc:
            raise NewAgeError(ErrorCode.UNAVAILABLE, f"Cannot save settings: {exc.line}") from None
        except OSError as exc:
            raise NewAgeError(
                ErrorCode.UNAVAILABLE, f"Cannot save settings: {exc.strerror}"
            ) from None
        return value

    def server_status(self, actor: Principal) -> dict[str, Any]:
        self._gate(actor)
        counters = self.status()
        settings = self.live.current
        uptime = counters.get("uptimeSeconds")
        if not isinstance(uptime, int | float):
            uptime = round(time.time() - self.created_at, 3)
        started = time.localtime(time.time() - uptime)
        return {
            "serverPort": settings.server_port,
            "serverAddress": settings.server_address,
            "networkSafe": settings.network_safe,
            "debugMode": settings.debug_mode,
            "logLevel": logs.current_level(),
            "startTime": time.strftime("%Y-%m-%d %H:%M:%S", started),
            **counters,
            "uptimeSeconds": uptime,
            "memory": memory(),
        }

    async def read_log(
        self,
        actor: Principal,
        filename: Any,
        level: Any,
        page: Any,
        page_size: Any,
        search: Any = None,
    ) -> LogPage:
        """One page of a log file; validation order and messages of the original server."""
        self._gate(actor)
        if filename not in LOG_FILES:
            raise bad_request("Invalid filename")
        if level is None:
            level = "all"
        if level not in LEVEL_OPTIONS:
            raise bad_request("Invalid level Options")
        page_no = js_parse_int(page) or 1
        if page_no < 1:
            raise bad_request("Invalid page number")
        size = js_parse_int(page_size) or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise bad_request(f"Invalid page size (must be between 1 and {MAX_PAGE_SIZE})")
        if search is not None and (not isinstance(search, str) or len(search) > MAX_SEARCH):
            raise bad_request(f"search must be text of at most {MAX_SEARCH} characters")
        scan = self.live.current.log_search_max_entries
        try:
            result = await asyncio.to_thread(
                self.logs.read, filename, level, page_no, size, search or None, scan
            )
        except FileNotFoundError:
            raise not_found(f"Log file not found: {filename}") from None
        except OSError as exc:
            raise NewAgeError(
                ErrorCode.UNAVAILABLE, f"Cannot read {filename}: {exc.strerror}"
            ) from None
        return {
            **OK,
            "lines": result.lines,
            "total": result.total,
            "page": page_no,
            "pageSize": size,
            "level": level,
            "filename": filename,
            "search": search or None,
        }
