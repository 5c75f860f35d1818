"""Logging: console plus four files in ``<data>/logs``.

Line format ``YYYY-MM-DD HH:mm:ss - level - message`` with the levels
``error``, ``warn``, ``info``, ``debug``; READ_LOG parses exactly this. The
per-level files are thresholds like the original's winston transports:
``error.log`` holds errors, ``warn.log`` warnings and errors, ``info.log``
info and above, ``combined.log`` everything at the live level.

Writes happen on a listener thread (QueueHandler), so a slow disk never
stalls the event loop. Keys, passwords and message bodies are only ever
logged at debug level, by the callers' discipline.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import queue
import re
import stat
import sys
from pathlib import Path

LOG_FILES = ("combined.log", "error.log", "warn.log", "info.log")
LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
ENTRY_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - (error|warn|info|debug) - ")

log = logging.getLogger("newage")


class LineFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        # One record goes to up to four handlers, and a rotating file formats
        # it twice (size check, then write): the line is made once.
        cached: str | None = getattr(record, "newage_line", None)
        if cached is not None:
            return cached
        level = LEVEL_NAMES.get(record.levelno, record.levelname.lower())
        text = f"{self.formatTime(record, self.datefmt)} - {level} - {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        setattr(record, "newage_line", text)  # noqa: B010
        return text


class LogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file that knows its size instead of asking for it.

    The standard handler asks the file system, for every record, whether the
    file is a regular one (two ``stat`` calls) and where its end is (a seek
    and a tell that flushes): a fifth of the server's CPU per connect went
    there. This one checks the type and size when it opens the file and
    counts the bytes it writes. A file truncated behind its back (copytruncate)
    is therefore rotated early once; everything else is as before: only
    regular files rotate, at the first record that would reach ``maxBytes``.
    """

    _regular = True
    _size = 0
    _adding = 0

    def _open(self) -> io.TextIOWrapper:
        stream = super()._open()
        found = os.fstat(stream.fileno())
        self._regular = stat.S_ISREG(found.st_mode)
        self._size = found.st_size
        return stream

    def shouldRollover(self, record: logging.LogRecord) -> int:
        if self.stream is None:
            self.stream = self._open()
        if not self._regular or self.maxBytes <= 0:
            return False
        line = f"{self.format(record)}\n"
        self._adding = len(line.encode(self.encoding or "utf-8", "replace"))
        return self._size + self._adding >= self.maxBytes

    def emit(self, record: logging.LogRecord) -> None:
        self._adding = 0
        super().emit(record)  # rolls over (a new file, its size) if due, then writes
        self._size += self._adding


class _Logging:
    listener: logging.handlers.QueueListener | None = None
    handlers: list[logging.Handler] = []


_state = _Logging()


def setup_logging(
    logs_dir: Path | None,
    level: str = "info",
    *,
    max_bytes: int = 10_000_000,
    backups: int = 5,
    console: bool = True,
) -> None:
    """(Re)configure the ``newage`` logger; safe to call more than once."""
    shutdown_logging()
    formatter = LineFormatter()
    targets: list[logging.Handler] = []
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        thresholds = {
            "combined.log": logging.NOTSET,
            "error.log": logging.ERROR,
            "warn.log": logging.WARNING,
            "info.log": logging.INFO,
        }
        for name, threshold in thresholds.items():
            handler = LogFile(
                logs_dir / name, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            handler.setLevel(threshold)
            handler.setFormatter(formatter)
            targets.append(handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        targets.append(stream)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    front = logging.handlers.QueueHandler(q)
    log.handlers = [front]
    log.propagate = False
    set_level(level)
    _state.handlers = targets
    _state.listener = logging.handlers.QueueListener(q, *targets, respect_handler_level=True)
    _state.listener.start()
    # uvicorn and the socket.io libraries log through the same pipeline
    for name in ("uvicorn", "uvicorn.error"):
        other = logging.getLogger(name)
        other.handlers = [front]
        other.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def set_level(level: str) -> None:
    log.setLevel(LEVELS[level])
    logging.getLogger("uvicorn.error").setLevel(max(LEVELS[level], logging.INFO))


def current_level() -> str:
    return LEVEL_NAMES.get(log.level, "info")


def shutdown_logging() -> None:
    if _state.listener is not None:
        _state.listener.stop()
        _state.listener = None
    for handler in _state.handlers:
        handler.close()
    _state.handlers = []
