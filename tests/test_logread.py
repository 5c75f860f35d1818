"""READ_LOG's reader: entries, levels, paging from the end, incremental index."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from newage.domain.ops.debug import js_parse_int
from newage.domain.ops.logread import CHUNK, LogReader
from newage.logs import ENTRY_RE, log, setup_logging, shutdown_logging


def line(i: int, level: str = "info", text: str = "") -> str:
    return f"2026-01-01 12:{i // 60 % 60:02d}:{i % 60:02d} - {level} - entry {i}{text}"


def write(path: Path, text: str, mode: str = "w") -> None:
    with open(path, mode, encoding="utf-8", newline="") as fh:
        fh.write(text)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path


def test_entries_keep_their_continuation_lines(logs):
    write(
        logs / "combined.log",
        "\n".join(
            [
                line(0),
                line(1, "error"),
                "Traceback (most recent call last):",
                '  File "x.py", line 1',
                "ValueError: boom",
                line(2, "warn"),
                line(3, "debug"),
            ]
        )
        + "\n",
    )
    page = LogReader(logs).read("combined.log", "all", 1, 10)
    assert page.total == 4
    assert page.lines[0] == line(0)
    assert page.lines[1].splitlines() == [
        line(1, "error"),
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: boom",
    ]
    assert page.lines[2:] == [line(2, "warn"), line(3, "debug")]


def test_level_filter_is_exact(logs):
    levels = ["info", "warn", "error", "debug"] * 5
    write(logs / "combined.log", "".join(line(i, lv) + "\n" for i, lv in enumerate(levels)))
    reader = LogReader(logs)
    for level in ("info", "warn", "error", "debug"):
        page = reader.read("combined.log", level, 1, 100)
        assert page.total == 5
        assert all(f" - {level} - " in text for text in page.lines)
    assert reader.read("combined.log", "all", 1, 100).total == 20


def test_page_one_is_the_newest_and_newest_is_last(logs):
    write(logs / "combined.log", "".join(line(i) + "\n" for i in range(25)))
    reader = LogReader(logs)
    first = reader.read("combined.log", "all", 1, 10)
    assert first.total == 25
    assert first.lines == [line(i) for i in range(15, 25)]
    assert reader.read("combined.log", "all", 2, 10).lines == [line(i) for i in range(5, 15)]
    assert reader.read("combined.log", "all", 3, 10).lines == [line(i) for i in range(5)]
    assert reader.read("combined.log", "all", 4, 10).lines == []
    assert reader.read("combined.log", "all", 10**18, 10).lines == []


def test_text_before_the_first_entry_is_an_entry_without_level(logs):
    write(logs / "combined.log", "stray start\nmore stray\n" + line(0, "warn") + "\n")
    reader = LogReader(logs)
    page = reader.read("combined.log", "all", 1, 10)
    assert page.lines == ["stray start\nmore stray", line(0, "warn")]
    assert reader.read("combined.log", "warn", 1, 10).lines == [line(0, "warn")]
    assert reader.read("combined.log", "info", 1, 10).total == 0


def test_empty_and_missing_files(logs):
    write(logs / "combined.log", "")
    reader = LogReader(logs)
    assert reader.read("combined.log", "all", 1, 10).total == 0
    with pytest.raises(FileNotFoundError):
        reader.read("error.log", "all", 1, 10)
    with pytest.raises(ValueError):
        reader.read("../newage.db", "all", 1, 10)


def test_appended_bytes_extend_the_index(logs):
    path = logs / "combined.log"
    write(path, "".join(line(i) + "\n" for i in range(3)))
    reader = LogReader(logs)
    assert reader.read("combined.log", "all", 1, 10).total == 3
    index = reader.index_of("combined.log")
    assert index is not None
    before = index.indexed
    # an entry still being written: the unfinished line is not indexed yet
    write(path, line(3, "error") + "\nTraceback: half", "a")
    page = reader.read("combined.log", "all", 1, 10)
    assert reader.index_of("combined.log") is index and index.indexed > before
    assert page.total == 4 and page.lines[-1] == line(3, "error")
    write(path, " done\n" + line(4, "error") + "\n", "a")
    page = reader.read("combined.log", "error", 1, 10)
    assert page.lines == [line(3, "error") + "\nTraceback: half done", line(4, "error")]
    # an unfinished header is not taken for a continuation line
    write(path, line(5, "warn")[:15], "a")
    assert reader.read("combined.log", "all", 1, 10).total == 5
    write(path, line(5, "warn")[15:] + "\n", "a")
    assert reader.read("combined.log", "warn", 1, 10).lines == [line(5, "warn")]


def test_truncation_and_rotation_rebuild_the_index(logs):
    path = logs / "combined.log"
    write(path, "".join(line(i) + "\n" for i in range(50)))
    reader = LogReader(logs)
    assert reader.read("combined.log", "all", 1, 10).total == 50
    write(path, line(100, "warn") + "\n")  # truncated in place
    page = reader.read("combined.log", "all", 1, 10)
    assert page.total == 1 and page.lines == [line(100, "warn")]
    # rotation: renamed away, a new file at the name (another inode)
    os.replace(path, logs / "combined.log.1")
    write(path, "".join(line(i, "error") + "\n" for i in range(200, 203)))
    assert reader.read("combined.log", "error", 1, 10).total == 3
    # truncated and regrown beyond the indexed size before the next read
    write(path, "".join(line(i, "debug") + "\n" for i in range(300, 310)))
    page = reader.read("combined.log", "all", 1, 100)
    assert page.total == 10 and all(" - debug - " in t for t in page.lines)


def test_lines_longer_than_a_chunk(logs):
    path = logs / "combined.log"
    huge = "x" * (CHUNK + 1000)
    write(path, line(0) + "\n" + line(1, "warn", huge) + "\n" + huge + "\n" + line(2) + "\n")
    reader = LogReader(logs)
    page = reader.read("combined.log", "all", 1, 10)
    assert page.total == 3
    assert page.lines[1] == line(1, "warn", huge) + "\n" + huge
    assert reader.read("combined.log", "warn", 1, 10).total == 1
    # an unfinished long line at the end waits for its newline
    write(path, line(3, "error", huge), "a")
    assert reader.read("combined.log", "error", 1, 10).total == 0
    write(path, "\n", "a")
    assert reader.read("combined.log", "error", 1, 10).total == 1


def test_invalid_utf8_is_replaced(logs):
    (logs / "combined.log").write_bytes(line(0).encode() + b" \xff\xfe\n")
    assert LogReader(logs).read("combined.log", "all", 1, 1).lines == [line(0) + " \ufffd\ufffd"]


def test_reads_what_the_logger_writes(tmp_path):
    setup_logging(tmp_path, "debug", console=False)
    try:
        log.info("plain")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        log.debug("quiet")
    finally:
        shutdown_logging()
    reader = LogReader(tmp_path)
    page = reader.read("combined.log", "all", 1, 10)
    assert page.total == 3
    assert page.lines[1].startswith(page.lines[1].split(" - ")[0] + " - error - failed\n")
    assert "ValueError: boom" in page.lines[1]
    assert all(ENTRY_RE.match(text) for text in page.lines)
    assert reader.read("error.log", "error", 1, 10).total == 1
    assert reader.read("info.log", "debug", 1, 10).total == 0


def test_js_parse_int():
    cases = [
        (None, None),
        (True, None),
        ("", None),
        ("abc", None),
        ("3", 3),
        (" 42xyz", 42),
        ("-2", -2),
        ("+7", 7),
        (2.9, 2),
        (-0.5, 0),
        (1e21, 1),
        (float("nan"), None),
        ("\u0663", None),  # JavaScript digits are ASCII
        ([1], None),
        ("9" * 5000, 10**18),
    ]
    for value, expected in cases:
        assert js_parse_int(value) == expected, value


def test_a_100_mb_log_pages_fast(tmp_path):
    """The index is built once by scanning in chunks; after that a page costs
    a bisect and a few reads, and appending does not mean a rescan."""
    rows = []
    for i in range(5000):
        level = ("info", "info", "warn", "debug", "error")[i % 5]
        rows.append(line(i, level, " " + "padding " * 8))
        if level == "error":
            rows.append("Traceback (most recent call last):\n  ...\nRuntimeError: generated")
    block = ("\n".join(rows) + "\n").encode()
    path = tmp_path / "combined.log"
    with open(path, "wb") as fh:
        written = 0
        while written < 100_000_000:
            fh.write(block)
            written += len(block)
    blocks = written // len(block)
    reader = LogReader(tmp_path)

    started = time.perf_counter()
    page = reader.read("combined.log", "error", 1, 100)
    build = time.perf_counter() - started
    assert page.total == 1000 * blocks
    assert page.lines[-1].endswith("RuntimeError: generated")

    started = time.perf_counter()
    deep = reader.read("combined.log", "all", 1234, 100)
    read = time.perf_counter() - started
    assert deep.total == 5000 * blocks and len(deep.lines) == 100

    with open(path, "ab") as fh:
        fh.write((line(9999, "warn") + "\n").encode())
    started = time.perf_counter()
    newest = reader.read("combined.log", "warn", 1, 1)
    append = time.perf_counter() - started
    assert newest.lines == [line(9999, "warn")]
    print(
        f"100 MB log: index build {build:.3f} s, page {read * 1000:.2f} ms, append {append * 1000:.2f} ms"
    )
    path.unlink()  # 100 MB is too much to leave in the kept tmp directories
    assert read < 1 and append < 1  # loose: two busy cores; milliseconds when idle
    assert build < 10  # generous: two busy cores; about 0.5 s when idle
