"""Servers and the CLI on PostgreSQL (``databaseUrl``).

Every test here runs with ``NEWAGE_DATABASE_URL`` set to the session's
(emptied) database, so in-process servers, ``newage serve`` processes and
CLI commands all open it. Some scenarios written for SQLite run again here,
imported from their modules.
"""

from __future__ import annotations

import httpx
import pytest

from newage.store.postgres import PostgresStore
from tests.helpers.actors import admin, connect, fake_extension, room
from tests.helpers.pg import sql
from tests.helpers.proc import ServerProcess, arun_cli
from tests.test_cli import (  # noqa: F401 - collected again, here on PostgreSQL
    test_cli_changes_reach_a_running_server_without_restart,
)
from tests.test_history import (  # noqa: F401
    test_history_survives_a_restart_and_a_returning_client_catches_up,
)
from tests.test_http import test_health_and_readiness  # noqa: F401
from tests.test_rooms_restart import test_state_before_equals_state_after  # noqa: F401


@pytest.fixture(autouse=True)
def on_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NEWAGE_DATABASE_URL", pg_url)
    return pg_url


async def test_rooms_and_history_live_in_the_database(server, peers, on_postgres, tmp_path):
    assert isinstance(server.app.store, PostgresStore)
    boss = await admin(server, peers)
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    await room(boss, "tavern", {"web": "master"})
    for text in ("one", "two", "three"):
        request = {"requestId": text, "message": text}  # into the personal room
        ack = await web.call("/llm", "LLM_REQUEST", request)
        assert ack["status"] == "ok", ack
        await ext.next_request()
        await ext.stream([text.upper()], final=True)
        await web.next("/llm", "LLM_RESPONSE")
    rows = await sql(on_postgres, "SELECT room, count(*) FROM messages GROUP BY room")
    assert dict(rows) == {"web": 6, "tavern": 1}  # + the join notice
    await web.close()
    await boss.close()
    # nothing of it is in the data directory: a server with another one sees it all
    await server.stop()
    other = await server.__class__(tmp_path / "elsewhere").start()
    try:
        names = {r.name for r in await other.app.store.load_rooms()}
        assert {"tavern", "web"} <= names
        kept = await other.app.store.page_messages("web", 0, 10)
        assert [m.body["message"] for m in kept] == ["one", "ONE", "two", "TWO", "three", "THREE"]
    finally:
        await other.stop()


async def test_serve_and_check_config_name_the_store_without_its_password(tmp_path, on_postgres):
    url = on_postgres.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    env = {"NEWAGE_DATABASE_URL": url}
    data = tmp_path / "d"
    checked = await arun_cli("check-config", "--data-dir", str(data), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "store postgresql://postgres:***@127.0.0.1" in checked.stdout
    server = ServerProcess(data, env=env).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/readyz")).json()["checks"]["store"] is True
    finally:
        log = server.stop()
    assert "store postgresql://postgres:***@" in log and "s3cret" not in log
    assert "s3cret" not in (data / "logs" / "combined.log").read_text()
    # an unreachable database stops check-config with one line, no password
    dead = {"NEWAGE_DATABASE_URL": "postgresql://postgres:s3cret@127.0.0.1:1/x"}
    failed = await arun_cli("check-config", "--data-dir", str(data), env=dead)
    assert failed.returncode == 3 and "postgresql://postgres:***@127.0.0.1:1/x" in failed.stderr
    assert "s3cret" not in failed.stderr + failed.stdout
