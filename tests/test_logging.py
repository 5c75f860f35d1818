"""Log files: line format, per-level thresholds, rotation, no secrets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from newage.logs import ENTRY_RE, log, setup_logging, shutdown_logging
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
