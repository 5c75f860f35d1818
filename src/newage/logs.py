"""Logging: console plus four files in ``<data>/logs``.

Line format ``YYYY-MM-DD HH:mm:ss - level - message`` with the levels
``error``, ``warn``, ``info``, ``debug``; READ_LOG parses exactly this. The
per-level files are thresholds like the original's winston transports:
``error.log`` holds errors, ``warn.log`` warnings and errors, ``info.log``
info and above, ``combined.log`` everything at the live level.

Writes happen on a listener thread (QueueHandler), so a slow disk never
stalls the event loop; the event loop's records reach it in batches, at
most ``BATCH_SECONDS`` after they are logged. Keys, passwords and message bodies are only ever
logged at debug level, by the callers' discipline.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import logging
import logging.handlers
import os
import queue
import re
import stat
import sys
from pathlib import Path
from typing import Any

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
BATCH_SECONDS = 0.02  # how long a record may wait for the ones after it
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


class BatchWriter(logging.Handler):
    """A handler that writes the records of one batch (``BatchListener``)
    with one write and one flush.

    Every write is a system call that lets go of the GIL, which the event
    loop thread takes and the writer thread must then win back: one write
    per record and file (the console is line-buffered) cost the loop more
    than the records themselves.
    """

    terminator = "\n"  # as StreamHandler's, which both handlers are

    def handle_batch(self, records: list[logging.LogRecord]) -> None:
        lines = [
            f"{self.format(record)}{self.terminator}" for record in records if self.filter(record)
        ]
        if not lines:
            return
        with self.lock:  # type: ignore[union-attr]
            try:
                self.write_lines(lines)
            except RecursionError:
                raise
            except Exception:
                self.handleError(records[0])

    def write_lines(self, lines: list[str]) -> None:
        raise NotImplementedError


class LogFile(BatchWriter, logging.handlers.RotatingFileHandler):
    """A rotating log file that knows its size instead of asking for it.

    The standard handler asks the file system, for every record, whether the
    file is a regular one (two ``stat`` calls) and where its end is (a seek
    and a tell that flushes): a fifth of the server's CPU per connect went
    there. This one checks the type and size when it opens the file and
    counts the bytes it writes. A file truncated behind its back (copytruncate)
    is therefore rotated early once; everything else is as before: only
    regular files rotate, at the first line that would reach ``maxBytes``.
    """

    _regular = True
    _size = 0

    def _open(self) -> io.TextIOWrapper:
        stream = super()._open()
        found = os.fstat(stream.fileno())
        self._regular = stat.S_ISREG(found.st_mode)
        self._size = found.st_size
        return stream

    def _bytes(self, line: str) -> int:
        return len(line.encode(self.encoding or "utf-8", "replace"))

    def _opened(self) -> io.TextIOWrapper:
        if self.stream is None:
            self.stream = self._open()
        return self.stream

    def _due(self, size: int) -> bool:
        self._opened()  # its type and size
        return self._regular and self.maxBytes > 0 and self._size + size >= self.maxBytes

    def shouldRollover(self, record: logging.LogRecord) -> int:
        return self._due(self._bytes(f"{self.format(record)}{self.terminator}"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_lines([f"{self.format(record)}{self.terminator}"])
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_lines(self, lines: list[str]) -> None:
        pending: list[str] = []
        for line in lines:
            size = self._bytes(line)
            if self._due(size):
                self._opened().write("".join(pending))
                pending = []
                self.doRollover()  # a new file: _open reads its size
            pending.append(line)
            self._size += size
        self._opened().write("".join(pending))
        self.flush()


class Console(BatchWriter, logging.StreamHandler):  # type: ignore[type-arg]
    def write_lines(self, lines: list[str]) -> None:
        self.stream.write("".join(lines))
        self.flush()


class BatchingQueueHandler(logging.handlers.QueueHandler):
    """Hands the event loop's records to the writer thread in batches.

    Waking the writer thread for every record (and flushing every file
    after it) cost more CPU than the rest of a websocket connect's own
    work; the records of a loop now go over together, ``BATCH_SECONDS`` after
    the first, and each file is written and flushed once per batch. Records
    logged outside an event loop (worker threads, startup) go over at once.
    """

    def __init__(self, q: queue.SimpleQueue[Any]) -> None:
        super().__init__(q)
        self._batch: list[logging.LogRecord] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The message is merged now (its arguments may change before the
        writer thread gets to it), in the record itself: this handler is
        the only one of the loggers it serves, so the copy the standard
        handler makes for the handlers after it would serve no one."""
        if record.exc_info or record.exc_text or record.stack_info:
            message = self.format(record)  # the message and the traceback
        else:
            message = record.getMessage()  # the formatter would add nothing
        record.msg = record.message = message
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        # runs under the handler's lock (Handler.handle)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.queue.put_nowait(record)
            return
        self._batch.append(record)
        # a timer of a loop that has since stopped (tests, a restarted loop)
        # would never fire: the running loop schedules its own
        if self._timer is None or self._timer_loop is not loop:
            self._timer = loop.call_later(BATCH_SECONDS, self.flush)
            self._timer_loop = loop

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._timer = None
            batch, self._batch = self._batch, []
            if batch:
                self.queue.put_nowait(batch)


class BatchListener(logging.handlers.QueueListener):
    def handle(self, record: Any) -> None:
        if not isinstance(record, list):
            super().handle(record)
            return
        for handler in self.handlers:
            items = record
            if self.respect_handler_level:
                items = [item for item in record if item.levelno >= handler.level]
            if isinstance(handler, BatchWriter):
                handler.handle_batch(items)
            else:
                for item in items:
                    handler.handle(item)


class _Logging:
    listener: logging.handlers.QueueListener | None = None
    front: BatchingQueueHandler | None = None
    at_exit = False
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
    if not _state.at_exit:
        # the writer thread is a daemon: at exit, the last batch and what it
        # has not written yet are written before the process ends
        atexit.register(shutdown_logging)
        _state.at_exit = True
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
        stream = Console(sys.stderr)
        stream.setFormatter(formatter)
        targets.append(stream)
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()  # records and batches of records
    front = BatchingQueueHandler(q)
    log.handlers = [front]
    log.propagate = False
    set_level(level)
    _state.handlers = targets
    _state.front = front
    _state.listener = BatchListener(q, *targets, respect_handler_level=True)
    _state.listener.start()
    # uvicorn and the socket.io libraries log through the same pipeline
    for name in ("uvicorn", "uvicorn.error"):
        other = logging.getLogger(name)
        other.handlers = [front]
        other.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def lean_records() -> None:
    """Skip what a log record would learn about its caller, thread and
    process: no line format of ours reads it, and it is a third of a log
    call (two per connect). The logging HOWTO's "Optimization" knobs; set
    for the whole process, so only where this process is ours (``serve``)."""
    logging._srcfile = None  # no sys._getframe walk
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def set_level(level: str) -> None:
    log.setLevel(LEVELS[level])
    logging.getLogger("uvicorn.error").setLevel(max(LEVELS[level], logging.INFO))


def current_level() -> str:
    return LEVEL_NAMES.get(log.level, "info")


def shutdown_logging() -> None:
    if _state.front is not None:
        _state.front.flush()  # a batch still waiting for its timer
        _state.front = None
    if _state.listener is not None:
        _state.listener.stop()
        _state.listener = None
    for handler in _state.handlers:
        handler.close()
    _state.handlers = []
