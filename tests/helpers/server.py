"""A real server on an ephemeral loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from newage.app import App
from newage.datainit import prepare_data_dir
from newage.protocol.names import ClientKind
from newage.serving import GranianServer, uvicorn_options
from newage.settings import Settings

# Fast bcrypt and short timers keep the suite quick; tests that care override.
TEST_SETTINGS: dict[str, Any] = {
    "bcryptCost": 4,
    "contextSendDelay": 0,
    "authFailureLimit": 1000,
    "keyIssueLimit": 1000,
    "keyIssueGlobalLimit": 1000,
    # tests act as remote peers through X-Forwarded-For from loopback
    "forwardedAllowIps": ["127.0.0.1"],
}


def write_settings(data_dir: Path, changes: dict[str, Any]) -> None:
    """Merge ``changes`` (file keys) into the data directory's settings file."""
    path = data_dir / "settings" / "server_settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(changes)
    path.write_text(json.dumps(current, indent=2))


@dataclass
class RunningServer:
    data_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    app: App | None = None
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _granian: GranianServer | None = None  # asgiServer granian (NEWAGE_ASGI_SERVER)
    keys: dict[str, str] = field(default_factory=dict)  # keys handed out by tests.helpers.actors

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_settings(self, changes: dict[str, Any]) -> None:
        write_settings(self.data_dir, changes)

    async def start(self) -> RunningServer:
        data, settings = prepare_data_dir(self.data_dir)
        self.write_settings({**TEST_SETTINGS, **self.overrides})
        data, settings = prepare_data_dir(self.data_dir)
        self.app = App(data, settings)
        if settings.asgi_server == "granian":
            return await self._start_granian(settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app.asgi, timeout_graceful_shutdown=1, **uvicorn_options(settings)
        )
        self._server = uvicorn.Server(config)
        # the test runner owns the signals
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started:
                return self
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("server did not start")

    async def _start_granian(self, settings: Settings) -> RunningServer:
        assert self.app is not None
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self._granian = GranianServer(self.app.asgi, settings, "127.0.0.1", self.port)
        await self._granian.start()
        assert self._granian.task is not None
        for _ in range(500):
            if self._granian.task.done():
                self._granian.task.result()
                raise RuntimeError("granian stopped at start-up")
            # listening comes before the app's start-up: wait for an answer
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
                status = await reader.readline()
                writer.close()
                if b" 200 " in status:
                    return self
            await asyncio.sleep(0.01)
        raise RuntimeError("server did not start")

    async def stop(self) -> None:
        if self._granian is not None:
            await self._granian.stop()
            self._granian = None
            return
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 10)
        self._server = None
        self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def trust(
        self, client_id: str, kind: ClientKind = ClientKind.CLIENT, password: str | None = None
    ) -> None:
        assert self.app is not None
        await self.app.trust.add(client_id, kind, password)

    async def client(self, client_id: str, kind: ClientKind = ClientKind.CLIENT) -> str:
        """Trust ``client_id`` and return a fresh key for it."""
        assert self.app is not None
        await self.app.trust.add(client_id, kind)
        key, _ = await self.app.keys.create(client_id)
        return key
