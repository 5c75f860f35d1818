"""READ_LOG: pages of log entries without reading the log whole.

An *entry* is a line matching :data:`newage.logs.ENTRY_RE` plus the lines
after it that do not match (tracebacks, multi-line messages). A block of
lines before the first entry is an entry of its own, without a level.

Each file gets an index of entry start offsets, one ``array('Q')`` for all
entries and one per level. The index is built by scanning the file in
chunks and afterwards only extended by the bytes appended since; it is
rebuilt when the file was replaced (rotation: another inode) or shrank
(truncation). Only complete lines are indexed, so a line the logger is
still writing is picked up by the next read. A page then costs a bisect
and one read per entry, whatever the size of the file.

Paging counts from the end: page 1 holds the newest entries; within a page
entries are in file order (newest last). Blocking I/O: call from a worker
thread.
"""

from __future__ import annotations

import os
import re
import threading
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from newage.logs import ENTRY_RE, LOG_FILES

LEVELS = ("error", "warn", "info", "debug")
LEVEL_OPTIONS = ("all", *LEVELS)
CHUNK = 8 << 20
# one line longer than this is skipped over instead of buffered whole
MAX_LINE_BUFFER = 64 << 20
HEAD_BYTES = 64

# ENTRY_RE, as bytes and anchored on the newline before the entry: the
# literal first character lets the regex engine jump between newlines
# instead of trying every byte.
_AFTER_NL = re.compile(b"\n" + ENTRY_RE.pattern.removeprefix("^").encode())


@dataclass(slots=True)
class Page:
    lines: list[str]
    total: int


@dataclass(slots=True)
class LogIndex:
    """Entry offsets of one file, valid while (device, inode) stay the same
    and the file does not shrink."""

    device: int = -1
    inode: int = -1
    head: bytes = b""  # the first bytes, to notice a file truncated and regrown
    indexed: int = 0  # offset just after the last complete line scanned
    starts: array[int] = field(default_factory=lambda: array("Q"))
    by_level: dict[str, array[int]] = field(
        default_factory=lambda: {level: array("Q") for level in LEVELS}
    )

    def reset(self, stat: os.stat_result, head: bytes) -> None:
        self.device, self.inode, self.head = stat.st_dev, stat.st_ino, head
        self.indexed = 0
        self.starts = array("Q")
        self.by_level = {level: array("Q") for level in LEVELS}

    def valid_for(self, stat: os.stat_result, head: bytes) -> bool:
        return (
            (stat.st_dev, stat.st_ino) == (self.device, self.inode)
            and stat.st_size >= self.indexed
            and head[: len(self.head)] == self.head
        )

    def entries(self, level: str) -> array[int]:
        return self.starts if level == "all" else self.by_level[level]

    def end_of(self, start: int) -> int:
        """Where the entry starting at ``start`` ends (the next entry, or the
        end of the indexed text)."""
        i = bisect_right(self.starts, start)
        return self.starts[i] if i < len(self.starts) else self.indexed

    # ------------------------------------------------------------------ scanning
    def extend(self, fh: BinaryIO, size: int) -> None:
        """Index the complete lines in ``[indexed, size)``."""
        pos = self.indexed
        while pos < size:
            # start one byte early so that the newline before pos is in the
            # buffer; at offset 0 there is none, so supply it
            base = pos - 1
            if pos == 0:
                fh.seek(0)
                buf = b"\n" + fh.read(min(CHUNK, size))
            else:
                fh.seek(base)
                buf = fh.read(min(CHUNK, size - base))
            last = buf.rfind(b"\n", 1)
            if last == -1:
                if base + len(buf) >= size:
                    break  # an unfinished last line: the next read gets it
                next_pos = self._skip_long_line(fh, base, buf, size)
                if next_pos is None:
                    break
                pos = next_pos
                continue
            if pos == 0 and not _AFTER_NL.match(buf):
                self.starts.append(0)  # text before the first entry, without a level
            self._record(buf, base, last)
            pos = base + last + 1
        self.indexed = max(self.indexed, pos)

    def _record(self, buf: bytes, base: int, end: int) -> None:
        starts = self.starts
        by_level = self.by_level
        for m in _AFTER_NL.finditer(buf, 0, end):
            offset = base + m.start() + 1
            starts.append(offset)
            by_level[m.group(1).decode()].append(offset)

    def _skip_long_line(self, fh: BinaryIO, base: int, buf: bytes, size: int) -> int | None:
        """A line longer than a chunk: record its start if it is an entry,
        then find its end without holding it in memory. Returns the offset
        after it, or None when it is not finished yet."""
        m = _AFTER_NL.match(buf)
        where = base + len(buf)
        while where < size:
            fh.seek(where)
            block = fh.read(min(CHUNK, size - where))
            if not block:
                return None
            nl = block.find(b"\n")
            if nl != -1:
                if m is None and base == -1:
                    self.starts.append(0)
                elif m is not None:
                    self.starts.append(base + 1)
                    self.by_level[m.group(1).decode()].append(base + 1)
                return where + nl + 1
            where += len(block)
        return None

    # ------------------------------------------------------------------ reading
    def page(self, fh: BinaryIO, level: str, page: int, page_size: int) -> Page:
        offsets = self.entries(level)
        total = len(offsets)
        hi = total - (page - 1) * page_size
        lo = max(0, hi - page_size)
        lines: list[str] = []
        for i in range(lo, max(lo, hi)):
            start = offsets[i]
            end = self.end_of(start)
            fh.seek(start)
            text = fh.read(end - start).decode("utf-8", errors="replace")
            lines.append(text.rstrip("\r\n"))
        return Page(lines, total)

    def search(
        self, fh: BinaryIO, level: str, needle: str, page: int, page_size: int, scan: int
    ) -> Page:
        """Like :meth:`page`, over the entries containing ``needle`` (any
        case) among the newest ``scan`` entries of the level."""
        offsets = self.entries(level)
        wanted = needle.casefold()
        found: list[str] = []  # newest first
        skip = (page - 1) * page_size
        total = 0
        for i in range(len(offsets) - 1, max(-1, len(offsets) - 1 - scan), -1):
            start = offsets[i]
            fh.seek(start)
            text = fh.read(self.end_of(start) - start).decode("utf-8", errors="replace")
            if wanted in text.casefold():
                if skip <= total < skip + page_size:
                    found.append(text.rstrip("\r\n"))
                total += 1
        return Page(found[::-1], total)


class LogReader:
    """Indexes of the whitelisted log files of one directory."""

    def __init__(self, logs_dir: Path, names: tuple[str, ...] = LOG_FILES) -> None:
        self.logs_dir = logs_dir
        self.names = names
        self._indexes: dict[str, LogIndex] = {}
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in names}

    def read(
        self,
        name: str,
        level: str,
        page: int,
        page_size: int,
        search: str | None = None,
        scan: int = 0,
    ) -> Page:
        """One page of ``name`` (of the entries holding ``search`` among the
        newest ``scan``); raises OSError (FileNotFoundError, ...)."""
        if name not in self.names:
            raise ValueError(f"not a log file: {name!r}")
        with self._locks[name], open(self.logs_dir / name, "rb") as fh:
            index = self.refresh(name, fh)
            if search:
                return index.search(fh, level, search, page, page_size, scan)
            return index.page(fh, level, page, page_size)

    def refresh(self, name: str, fh: BinaryIO) -> LogIndex:
        """Bring the index of an open file up to date (the caller holds its lock)."""
        stat = os.fstat(fh.fileno())
        fh.seek(0)
        head = fh.read(HEAD_BYTES)
        index = self._indexes.get(name)
        if index is None or not index.valid_for(stat, head):
            index = LogIndex()
            index.reset(stat, head)
            self._indexes[name] = index
        elif len(index.head) < HEAD_BYTES:
            index.head = head  # the file was shorter than HEAD_BYTES last time
        if stat.st_size > index.indexed:
            index.extend(fh, stat.st_size)
        return index

    def index_of(self, name: str) -> LogIndex | None:
        return self._indexes.get(name)
