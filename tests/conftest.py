from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.client import Peer
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
