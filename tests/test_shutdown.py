"""SIGTERM fails every open request visibly and exits 0; after a crash the
next start closes what was left open, keeping the partial text saved at most
a second before."""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from pathlib import Path

from newage.datadir import DataDir
from newage.store.sqlite import SQLiteStore
from tests.helpers.client import Peer, auth
from tests.helpers.fake_extension import FakeExtension
from tests.helpers.proc import ServerProcess, arun_cli
from tests.helpers.wait import eventually


async def clients(server: ServerProcess, data: Path) -> tuple[FakeExtension, Peer]:
    keys = {}
    for client_id, kind in (("web", "client"), ("SillyTavern-1", "SillyTavern")):
        assert (
            await arun_cli("trust", "add", client_id, "--type", kind, "--data-dir", str(data))
        ).returncode == 0
        keys[client_id] = (
            await arun_cli("keys", "create", client_id, "--data-dir", str(data))
        ).stdout.strip()
    ext_peer = Peer(server.url)
    await ext_peer.open(
        "/llm", auth("SillyTavern-1", keys["SillyTavern-1"], clientType="SillyTavern")
    )
    web = Peer(server.url)
    await web.open("/llm", auth("web", keys["web"], clientType="web-app"))
    return FakeExtension(ext_peer, "SillyTavern-1"), web


async def close(ext: FakeExtension | None, web: Peer | None) -> None:
    for peer in (web, ext.peer if ext else None):
        if peer is not None:
            await peer.close()


async def responses(data: Path) -> list[dict]:
    store = SQLiteStore(DataDir.at(data).db_path)
    await store.open()
    try:
        return [m.body for m in await store.latest_messages("web", 20)]
    finally:
        await store.close()


async def test_sigterm_fails_open_requests_visibly_and_exits_zero(tmp_path: Path):
    data = tmp_path / "d"
    server = ServerProcess(data).start()
    ext = web = None
    try:
        ext, web = await clients(server, data)
        for rid in ("r1", "r2"):
            ack = await web.call("/llm", "LLM_REQUEST", {"requestId": rid, "message": "hi"})
            assert ack["status"] == "ok", ack
        await ext.next_request()
        await ext.stream(["half an ", "answer"])
        await web.next("/llm", "SERVER_STREAM_DATA", timeout=5)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
        assert end["status"] == "failed" and end["data"] == "half an answer"
        failed = set()
        while failed != {"r1", "r2"}:
            update = await web.next(
                "/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "failed", timeout=10
            )
            assert update["message"] == "The server is shutting down."
            failed.add(update["requestId"])
        assert server.proc.wait(timeout=20) == 0
    finally:
        await close(ext, web)
        server.stop()
    kept = [b for b in await responses(data) if b.get("isResponse")]
    assert {b["requestId"]: (b["data"], b["incomplete"]) for b in kept} == {
        "r1": ("half an answer", True),
        "r2": ("", True),
    }


async def test_after_a_crash_open_requests_are_closed_with_their_partial_text(tmp_path: Path):
    data = tmp_path / "d"
    server = ServerProcess(data).start()
    ext = web = None
    try:
        ext, web = await clients(server, data)
        ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "hi"})
        assert ack["status"] == "ok", ack
        await ext.next_request()
        await ext.stream(["the first ", "second of text"], output_id=str(uuid.uuid4()))
        await web.next("/llm", "SERVER_STREAM_DATA", timeout=5)
        started = time.monotonic()

        def saved() -> bool:
            conn = sqlite3.connect(DataDir.at(data).db_path)
            try:
                row = conn.execute("SELECT text FROM pending_answers").fetchone()
            finally:
                conn.close()
            return row is not None and row[0] == "the first second of text"

        await eventually(saved, timeout=5)
        assert time.monotonic() - started < 3  # saved about every second
        assert server.proc is not None
        server.proc.kill()  # no chance to say anything
        server.proc.wait()
    finally:
        await close(ext, web)
    # recovery runs at start, before /healthz answers
    log = ServerProcess(data, port=server.port).start().stop()
    assert "closed 1 answer(s) left open" in log
    bodies = await responses(data)
    answer = next(b for b in bodies if b.get("isResponse"))
    assert answer["requestId"] == "r1" and answer["incomplete"] is True
    assert answer["data"] == "the first second of text" and answer["status"] == "failed"
    assert answer["error"] == "The server stopped before the answer was complete."
    notes = [b for b in bodies if b.get("isSystem")]
    assert notes and "r1" in notes[-1]["data"]
    conn = sqlite3.connect(DataDir.at(data).db_path)
    assert conn.execute("SELECT count(*) FROM pending_answers").fetchone()[0] == 0
    conn.close()
