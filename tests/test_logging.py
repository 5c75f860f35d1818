"""Log files: line format, per-level thresholds, rotation, no secrets."""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import re
from pathlib import Path

import pytest

from newage.logs import (
    ENTRY_RE,
    BatchListener,
    Console,
    LineFormatter,
    LogFile,
    lean_records,
    log,
    setup_logging,
    shutdown_logging,
)
from tests.helpers.client import Refused, auth

LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - (error|warn|info|debug) - .+")


def entries(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if ENTRY_RE.match(line)]


def test_format_and_thresholds(tmp_path: Path):
    setup_logging(tmp_path, "debug", console=False)
    try:
        log.debug("d-line")
        log.info("i-line")
        log.warning("w-line")
        log.error("e-line")
    finally:
        shutdown_logging()
    combined = (tmp_path / "combined.log").read_text().splitlines()
    assert all(LINE.match(line) for line in combined)
    assert [line.split(" - ", 2)[1:] for line in combined] == [
        ["debug", "d-line"],
        ["info", "i-line"],
        ["warn", "w-line"],
        ["error", "e-line"],
    ]
    levels = {
        name: [line.split(" - ")[1] for line in entries(tmp_path / name)]
        for name in ("error.log", "warn.log", "info.log")
    }
    assert levels == {
        "error.log": ["error"],
        "warn.log": ["warn", "error"],
        "info.log": ["info", "warn", "error"],
    }


def test_level_switch_and_rotation(tmp_path: Path):
    setup_logging(tmp_path, "info", console=False, max_bytes=10_000, backups=2)
    try:
        log.debug("hidden")
        for i in range(400):
            log.info("line %d %s", i, "x" * 40)
    finally:
        shutdown_logging()
    assert "hidden" not in (tmp_path / "combined.log").read_text()
    assert (tmp_path / "combined.log.1").exists() and (tmp_path / "combined.log.2").exists()
    assert not (tmp_path / "combined.log.3").exists()
    assert (tmp_path / "combined.log").stat().st_size <= 10_000


async def test_keys_and_passwords_never_reach_the_logs(server, peers):
    setup_logging(server.data_dir / "logs", "info", console=False)
    try:
        key = await server.client("alice")
        await server.trust("SillyTavern-1", password="s3cret-pw")
        peer = peers()
        await peer.open("/llm", auth("alice", key))
        bad = peers()
        with pytest.raises(Refused, match="Invalid key"):
            await bad.open("/llm", auth("alice", key + "x"))
    finally:
        # the lines were queued before the answers went out; stopping the
        # listener writes every queued line
        shutdown_logging()
        logging.getLogger("newage").handlers = []
    text = "".join(p.read_text() for p in (server.data_dir / "logs").glob("*.log"))
    assert "alice" in text  # the connection itself is logged
    # and so is the refusal, as a warning of the audit trail
    assert (
        "- warn - audit: 127.0.0.1 login.refused 'alice' (namespace=/llm reason=Invalid key.)"
        in text
    )
    assert key not in text and "s3cret-pw" not in text and "$2b$" not in text


def _records(count: int, text: str = "x" * 40) -> list[logging.LogRecord]:
    return [
        logging.LogRecord("newage", logging.INFO, __file__, 1, "line %d %s", (i, text), None)
        for i in range(count)
    ]


def test_a_batch_is_one_write_per_handler(tmp_path: Path):
    # each write is a system call that hands the GIL to the event loop and
    # back: a batch of records goes out in one
    class Counting(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    stream = Counting()
    console = Console(stream)
    console.setFormatter(LineFormatter())
    listener = BatchListener(queue.SimpleQueue(), console, respect_handler_level=True)
    batch = _records(50)
    warning = logging.LogRecord("newage", logging.WARNING, __file__, 1, "w", (), None)
    listener.handle([*batch, warning])
    assert stream.writes == 1
    assert stream.getvalue().count("\n") == 51
    console.setLevel(logging.WARNING)  # thresholds still apply within a batch
    listener.handle([*_records(3), warning])
    assert stream.writes == 2 and stream.getvalue().count("\n") == 52


def test_a_batch_rotates_where_a_line_would_reach_the_limit(tmp_path: Path):
    path = tmp_path / "batch.log"
    handler = LogFile(path, maxBytes=1000, backupCount=5, encoding="utf-8")
    handler.setFormatter(LineFormatter())
    try:
        handler.handle_batch(_records(60))  # 60 lines of 70-odd bytes: several files
    finally:
        handler.close()
    files = [path, *(tmp_path / f"batch.log.{i}" for i in range(1, 5))]
    assert all(0 < p.stat().st_size <= 1000 for p in files)
    lines = [line for p in reversed(files) for line in p.read_text().splitlines()]
    assert [int(line.split(" - ")[2].split()[1]) for line in lines] == list(range(60))


def test_the_loop_thread_merges_the_message_before_handing_it_over(tmp_path: Path):
    # the writer thread formats later: arguments changed meanwhile must not
    # show, and an exception's traceback must travel with the line
    setup_logging(tmp_path, "info", console=False)
    try:

        async def main() -> None:
            items = ["before"]
            log.info("items %s", items)
            items.append("after")
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")

        asyncio.run(main())
    finally:
        shutdown_logging()
    text = (tmp_path / "combined.log").read_text()
    assert "items ['before']\n" in text
    assert "failed\nTraceback" in text and "ValueError: boom" in text


def test_lean_records_write_the_same_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # serve skips a record's caller, thread and process fields: no line reads them
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored after
    lean_records()
    setup_logging(tmp_path, "info", console=False)
    try:
        log.info("plain %s", "line")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed %d", 7)
    finally:
        shutdown_logging()
    lines = (tmp_path / "combined.log").read_text().splitlines()
    assert LINE.match(lines[0]) and lines[0].endswith(" - info - plain line")
    assert (
        lines[1].endswith(" - error - failed 7")
        and lines[2] == "Traceback (most recent call last):"
    )
    assert lines[-1] == "ValueError: boom"
