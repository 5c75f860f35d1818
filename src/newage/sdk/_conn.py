"""One Socket.IO connection of the SDK: python-socketio's AsyncClient with
the server's acks and refusals turned into :class:`NewAgeError`.

python-socketio reconnects on its own (same namespaces, and ``auth`` asked
for afresh on every attempt, so a renewed key is used); the SDK only has to
react to its ``connect`` events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import socketio

from newage.sdk.errors import NewAgeError, check_ack

Auth = Callable[[], dict[str, Any]]
Handler = Callable[..., Any]


class Connection:
    def __init__(
        self,
        url: str,
        namespaces: Iterable[str],
        auth: Auth,
        *,
        reconnection: bool = True,
        timeout: float = 10,
        socketio_path: str = "socket.io",
        transports: list[str] | None = None,
    ) -> None:
        self.url = url
        self.namespaces = list(namespaces)
        self.timeout = timeout
        self._auth = auth
        self._path = socketio_path
        self._transports = transports or ["websocket"]
        self.sio = socketio.AsyncClient(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=5
        )
        self.refusal: Any = None  # the last CONNECT_ERROR's data, for the exception
        self.on_refused: Callable[[Any], None] | None = None
        for namespace in self.namespaces:
            self.sio.on("connect_error", self._refused, namespace=namespace)

    def _refused(self, data: Any = None, *_: Any) -> None:
        self.refusal = data
        if self.on_refused is not None:
            self.on_refused(data)

    def on(self, namespace: str, event: str, handler: Handler) -> None:
        self.sio.on(event, handler, namespace=namespace)

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected)

    async def connect(self) -> None:
        self.refusal = None
        try:
            await self.sio.connect(
                self.url,
                namespaces=self.namespaces,
                auth=self._auth,
                transports=self._transports,
                socketio_path=self._path,
                wait_timeout=self.timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            await self.close()
            refusal = self.refusal
            if isinstance(refusal, dict) and isinstance(refusal.get("data"), dict):
                raise NewAgeError.from_payload(refusal["data"]) from None
            if isinstance(refusal, dict) and "message" in refusal:
                raise NewAgeError(str(refusal["message"]), "unauthenticated", refusal) from None
            raise NewAgeError(f"Cannot connect to {self.url}: {exc}", "unavailable") from None

    async def call(
        self, namespace: str, event: str, data: Any = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send ``event`` and wait for its ack; an error ack raises."""
        wait = timeout or self.timeout
        try:
            ack = await self.sio.call(event, data, namespace=namespace, timeout=wait)
        except socketio.exceptions.TimeoutError:
            raise NewAgeError(f"No answer to {event} within {wait} s.", "timeout") from None
        except (socketio.exceptions.BadNamespaceError, socketio.exceptions.DisconnectedError):
            raise NewAgeError("Not connected.", "unavailable") from None
        return check_ack(ack)

    async def emit(self, namespace: str, event: str, data: Any) -> None:
        """Fire and forget; a frame for a socket that is down is lost, and
        the server fails what it belonged to (the extension disconnected)."""
        try:
            await self.sio.emit(event, data, namespace=namespace)
        except (socketio.exceptions.BadNamespaceError, socketio.exceptions.DisconnectedError):
            raise NewAgeError("Not connected.", "unavailable") from None

    async def close(self) -> None:
        # shutdown() also stops a reconnection under way, which disconnect() leaves running
        with contextlib.suppress(Exception):  # closing what may already be gone
            await self.sio.shutdown()
