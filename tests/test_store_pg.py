"""What only the PostgreSQL store has: its migrations under an advisory
lock, LISTEN/NOTIFY for other processes' changes, a ping that gives up."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from newage.domain.ports.records import KeyRecord, RoomRecord, TrustEntry
from newage.protocol.names import ClientKind, RequestMode
from newage.settings import SettingsError, redact_url, validate_settings
from newage.store import pg_listen
from newage.store.factory import describe_store, make_store
from newage.store.pg_migrations import PG_MIGRATIONS
from newage.store.postgres import PostgresStore
from newage.store.sqlite import SQLiteStore
from tests.helpers.pg import sql
from tests.helpers.wait import eventually


@pytest.fixture
def fresh_url(pg_databases) -> str:
    """A database no store has opened yet."""
    return pg_databases.create()


async def opened(url: str) -> PostgresStore:
    store = PostgresStore(url, pool_size=3)
    await store.open()
    return store


async def test_two_processes_migrating_at_once_both_start(fresh_url):
    stores = await asyncio.gather(*(opened(fresh_url) for _ in range(4)))
    try:
        rows = await sql(fresh_url, "SELECT version FROM schema_version")
        assert [r[0] for r in rows] == [len(PG_MIGRATIONS)]
        await stores[0].put_trust(TrustEntry("a", ClientKind.CLIENT, True, None, False, "t", "t"))
        assert [e.client_id for e in await stores[3].list_trust()] == ["a"]
    finally:
        for store in stores:
            await store.close()
    again = await opened(fresh_url)  # nothing to do the second time
    await again.close()


async def test_a_newer_schema_is_refused(fresh_url):
    store = await opened(fresh_url)
    await store.close()
    await sql(fresh_url, "UPDATE schema_version SET version = $1", len(PG_MIGRATIONS) + 1)
    with pytest.raises(RuntimeError, match=r"newer than this server.*upgrade newage"):
        await opened(fresh_url)


async def test_other_processes_changes_are_noticed(pg_url):
    server, cli = await opened(pg_url), await opened(pg_url)
    try:
        assert not await server.changed_elsewhere()
        await server.put_trust(TrustEntry("own", ClientKind.CLIENT, True, None, False, "t", "t"))
        await server.set_meta("x", "1")
        await cli.set_meta("y", "1")  # not about who may connect
        await cli.touch_key("own", "fp", "now")
        await asyncio.sleep(0.3)
        assert not await server.changed_elsewhere()
        for change in (
            cli.put_trust(TrustEntry("bot", ClientKind.CLIENT, True, None, False, "t", "t")),
            cli.put_key(KeyRecord("bot", "h", "fp", "t")),
            cli.delete_key("bot"),
            cli.claim_identity("bot#1", "bot", "t"),
            cli.release_identity("bot#1"),
            cli.delete_trust("bot"),
        ):
            await change
            await eventually(server.changed_elsewhere, timeout=2)
            assert not await server.changed_elsewhere()  # reported once
        await cli.delete_trust("ghost")  # nothing changed, nothing sent
        await asyncio.sleep(0.3)
        assert not await server.changed_elsewhere()
    finally:
        await cli.close()
        await server.close()


async def test_a_lost_listener_comes_back(pg_url):
    server, cli = await opened(pg_url), await opened(pg_url)
    try:
        await server.changed_elsewhere()
        # the database drops every connection (a restart, a failover)
        await sql(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        # a query racing the cut fails, as with any outage; the pools then reconnect
        await eventually(cli.ping, timeout=3)
        await cli.put_trust(TrustEntry("missed", ClientKind.CLIENT, True, None, False, "t", "t"))
        # what was sent meanwhile is lost, so the comeback counts as a change
        await eventually(server.changed_elsewhere, timeout=3)
        assert await server.ping()
        await cli.delete_trust("missed")
        await eventually(server.changed_elsewhere, timeout=3)
    finally:
        await cli.close()
        await server.close()


class Proxy:
    """A TCP relay to PostgreSQL that can go silent, as a hung database or a
    dropped network path does: ``hang()`` stalls every connection open now,
    ``hang(new_too=True)`` also the ones opened later."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.generation = 0
        self.stalled_below = 0  # connections of an older generation stall
        self.new_too = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def hang(self, new_too: bool = False) -> None:
        self.generation += 1
        self.stalled_below = self.generation
        self.new_too = new_too

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        mine = self.generation

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if mine < self.stalled_below or self.new_too:
                        await asyncio.Event().wait()  # silence, no close
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            t = asyncio.create_task(task)
            self.tasks.add(t)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.server is not None:
            self.server.close()


def through(proxy_port: int, url: str) -> str:
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy_port}")


async def test_ping_of_a_hung_database_says_no_quickly(pg_url):
    proxy = Proxy()
    port = await proxy.start()
    store = PostgresStore(through(port, pg_url), pool_size=2)
    await store.open()
    try:
        assert await store.ping()
        proxy.hang(new_too=True)
        started = time.monotonic()
        assert not await store.ping()
        assert time.monotonic() - started < 5
    finally:
        await proxy.stop()
        await asyncio.wait_for(store.close(), 10)


async def test_a_response_text_is_stored_once(pg_url):
    store = await opened(pg_url)
    try:
        await store.create_room(RoomRecord("r", RequestMode.IMMEDIATE, "t"))
        text = "unique-answer-text " * 50
        body = {"messageId": "m1", "responseId": "p1", "isResponse": True, "data": text}
        body["message"] = text
        await store.append_message("r", "response", body)
        raw = (await sql(pg_url, "SELECT body FROM messages"))[0][0]
        assert bytes(raw).count(b"unique-answer-text") == 50
        assert (await store.latest_messages("r", 1))[0].body == body
    finally:
        await store.close()


def test_the_database_url_setting(tmp_path):
    settings = validate_settings({"databaseUrl": "postgres://u:s3cret@db/newage"}, "f")
    store = make_store(settings, tmp_path / "newage.db")
    assert isinstance(store, PostgresStore) and store.pool_size == 10
    assert "s3cret" not in repr(store) and "s3cret" not in describe_store(settings, tmp_path)
    assert redact_url("postgresql://u:s3cret@db:5433/x") == "postgresql://u:***@db:5433/x"
    assert isinstance(make_store(validate_settings({}, "f"), tmp_path / "n.db"), SQLiteStore)
    with pytest.raises(SettingsError) as refused:
        validate_settings({"databaseUrl": "mysql://u:s3cret@db/newage"}, "f")
    assert refused.value.field == "databaseUrl" and "postgresql://" in refused.value.problem
    assert "s3cret" not in refused.value.line and "u:***@db" in refused.value.line


async def test_a_silently_dropped_listener_is_replaced(pg_url, monkeypatch):
    monkeypatch.setattr(pg_listen, "PROBE_INTERVAL", 0.2)
    proxy = Proxy()
    port = await proxy.start()
    server, cli = PostgresStore(through(port, pg_url), pool_size=2), await opened(pg_url)
    await server.open()
    try:
        assert not await server.changed_elsewhere()
        proxy.hang()  # the network path dies without a word; new connections work
        await cli.put_trust(TrustEntry("bot", ClientKind.CLIENT, True, None, False, "t", "t"))
        # the probe finds the listener silent, a new one counts as a change
        await eventually(server.changed_elsewhere, timeout=5)
        await cli.delete_trust("bot")
        await eventually(server.changed_elsewhere, timeout=5)
    finally:
        await proxy.stop()
        await asyncio.wait_for(server.close(), 15)
        await cli.close()


async def test_nodes_with_their_own_trust_files_share_one_trust_table(pg_url, tmp_path):
    """Each node imports its files into the shared table without undoing what
    another node (or the CLI against it) changed there."""
    from newage.domain.identity import trustfile
    from newage.domain.identity.trust import TrustService
    from newage.store.trustfiles import TrustDirectory

    dirs = {name: tmp_path / name for name in ("a", "b")}
    for path in dirs.values():
        path.mkdir()
    files = {name: TrustDirectory(path) for name, path in dirs.items()}
    trustfile.write_entry(files["a"], TrustEntry("bot-a", ClientKind.CLIENT, trusted=True))
    trustfile.write_entry(files["b"], TrustEntry("bot-b", ClientKind.CLIENT, trusted=True))
    # node b also has a stale copy of bot-a's file
    trustfile.write_entry(files["b"], TrustEntry("bot-a", ClientKind.CLIENT, trusted=True))
    store = await opened(pg_url)
    try:
        node_a, node_b = (TrustService(store, files[n], 4) for n in ("a", "b"))
        await node_a.import_files()
        await node_b.import_files()
        trusted = {e.client_id for e in await store.list_trust() if e.trusted}
        assert trusted == {"bot-a", "bot-b"}  # b's start did not drop a's client

        assert await node_a.remove("bot-a")
        await node_b.import_files()  # b restarts with its stale trusted file
        entry = await store.get_trust("bot-a")
        assert entry is not None and not entry.trusted
        assert (await store.get_trust("bot-b")).trusted
    finally:
        await store.close()


async def test_a_sqlite_store_still_mirrors_its_files_exactly(tmp_path):
    from newage.domain.identity import trustfile
    from newage.domain.identity.trust import TrustService
    from newage.store.trustfiles import TrustDirectory

    (tmp_path / "s").mkdir()
    files = TrustDirectory(tmp_path / "s")
    store = SQLiteStore(tmp_path / "db.sqlite")
    await store.open()
    try:
        await store.put_trust(TrustEntry("gone", ClientKind.CLIENT, trusted=True))
        trustfile.write_entry(files, TrustEntry("kept", ClientKind.CLIENT, trusted=True))
        await TrustService(store, files, 4).import_files()
        assert [e.client_id for e in await store.list_trust()] == ["kept"]
    finally:
        await store.close()
