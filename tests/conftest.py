from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from newage.domain.ports.store import Store
from newage.store.postgres import PostgresStore
from newage.store.sqlite import SQLiteStore
from tests.helpers.client import Peer
from tests.helpers.cluster import Cluster, MakeCluster
from tests.helpers.pg import PgDatabases, empty_tables
from tests.helpers.sdk import sdk  # noqa: F401 - the SDK fixture for every test module
from tests.helpers.server import RunningServer


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RunningServer]]]:
    servers: list[RunningServer] = []

    async def make(name: str = "data", **overrides: Any) -> RunningServer:
        server = RunningServer(tmp_path / name, overrides)
        servers.append(server)
        return await server.start()

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Settings of the ``server`` fixture; a test sets its own with
    ``@pytest.mark.parametrize("server_settings", [{...}])``."""
    return {}


@pytest.fixture
async def server(
    make_server: Callable[..., Awaitable[RunningServer]], server_settings: dict[str, Any]
) -> RunningServer:
    return await make_server(**server_settings)


@pytest.fixture
async def peers(server: RunningServer) -> AsyncIterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(**kwargs: Any) -> Peer:
        peer = Peer(server.url, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    databases = PgDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def pg_session_url(pg_databases: PgDatabases) -> str:
    """The session's database (created on first use)."""
    return pg_databases.create()


@pytest.fixture
async def pg_url(pg_session_url: str) -> str:
    """The session's database, emptied for this test."""
    await empty_tables(pg_session_url)
    return pg_session_url


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str) -> AsyncIterator[MakeCluster]:
    """``newage serve`` nodes on one PostgreSQL database and one Redis key
    space (as deployed: deploy/compose.yaml); ``await cluster(n, **env)``."""
    made: list[Cluster] = []

    async def make(size: int, **env: str) -> Cluster:
        made.append(Cluster(tmp_path, size, {"NEWAGE_DATABASE_URL": pg_url, **env}))
        return await made[-1].start()

    yield make
    for each in made:
        for index, output in enumerate(await each.stop()):
            print(f"--- node {index}\n{output}")  # shown when a test fails


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each kind (the storage contract holds for both)."""
    if request.param == "sqlite":
        opened: Store = SQLiteStore(tmp_path / "db.sqlite")
    else:
        # a sync fixture: getfixturevalue cannot run an async one from here
        url = request.getfixturevalue("pg_session_url")
        await empty_tables(url)
        opened = PostgresStore(url, pool_size=4)
    await opened.open()
    yield opened
    await opened.close()
