"""SDK clients and extensions for tests, closed when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from newage.protocol.names import ClientKind
from newage.sdk import Client, Extension, Handler
from tests.helpers.server import RunningServer
from tests.helpers.wait import eventually


class Sdk:
    def __init__(self, server: RunningServer, stack: AsyncExitStack) -> None:
        self.server = server
        self.stack = stack

    async def client(
        self, client_id: str = "web", kind: ClientKind = ClientKind.CLIENT, **kw: Any
    ) -> Client:
        key = self.server.keys.get(client_id)
        if key is None:
            key = self.server.keys[client_id] = await self.server.client(client_id, kind)
        client = Client(self.server.url, client_id, key, **kw)
        return await self.stack.enter_async_context(client)

    async def extension(
        self, handler: Handler, name: str = "SillyTavern-1", password: str | None = None, **kw: Any
    ) -> Extension:
        await self.server.trust(name, ClientKind.SILLYTAVERN, password)
        ext = Extension(self.server.url, name, handler, password=password, **kw)
        return await self.stack.enter_async_context(ext)


@pytest.fixture
async def sdk(server: RunningServer) -> AsyncIterator[Sdk]:
    async with AsyncExitStack() as stack:
        yield Sdk(server, stack)


def tokens(*pieces: str) -> Callable[[Any], Awaitable[Any]]:
    """A handler streaming ``pieces``."""

    async def gen(_: Any) -> AsyncIterator[str]:
        for piece in pieces:
            yield piece

    return gen  # type: ignore[return-value]


async def drop(client: Client) -> None:
    """Break the client's transport as a network failure would (python-socketio reconnects)."""
    await client.connection.sio.eio.ws.close()
    await eventually(lambda: not client.connection.connected)


def slow_reconnect(client: Client) -> None:
    """Reconnect after 1.5 s: time for the extension to go on while the client is away."""
    sio = client.connection.sio
    sio.reconnection_delay = sio.reconnection_delay_max = 1.5
    sio.randomization_factor = 0
