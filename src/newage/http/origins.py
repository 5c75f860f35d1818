"""Browser origin check in front of every HTTP and websocket request.

A web page the user visits can reach a server on loopback; without this
check it could open Socket.IO, take the key-less SillyTavern login and from
there obtain keys. Browsers send ``Origin`` on every websocket handshake and
every cross-origin request, so refusing unknown origins here, before the
Socket.IO path or any HTTP route is looked at, covers polling, websocket and
every HTTP API at once. Requests without ``Origin`` (non-browser clients)
pass untouched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from newage.logs import log
from newage.settings import Settings

# Where a SillyTavern page runs; any port.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
REFUSAL = "Origin not allowed."


def _split(origin: str) -> tuple[str, str, str] | None:
    """``(scheme, host, port)`` of an origin, host lower-cased and IPv6 bracketed."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = "443" if parts.scheme == "https" else "80"
    return parts.scheme, host, str(port) if port is not None else default


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class OriginPolicy:
    """Which ``Origin`` values may talk to the server (see docs/security.md)."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self.settings = settings

    def allowed(self, origin: str, host_header: str | None) -> bool:
        parts = _split(origin)
        if parts is None:
            return False
        scheme, host, port = parts
        if host in LOOPBACK_HOSTS:
            return True
        settings = self.settings()
        # The server's own origin: the page came from this server. Only for
        # an address literal, so DNS rebinding (a hostile name re-pointed at
        # us) cannot pass itself off as our own origin.
        if host_header is not None and _is_ip_literal(host):
            own = _split(f"{scheme}://{host_header}")
            if own is not None and own[1:] == (host, port):
                return True
        own_address = _split(settings.server_address)
        if own_address is not None and own_address[1] == host and port == str(settings.server_port):
            return True
        for entry in settings.cors_origins:
            if entry == "*":
                return True
            wanted = _split(entry.rstrip("/").removesuffix(":*"))
            if wanted is None:
                continue
            if entry.endswith(":*"):
                if wanted[:2] == (scheme, host):
                    return True
            elif wanted == parts:
                return True
        return False

    def for_engineio(self, origin: str | None, environ: dict[str, Any]) -> bool:
        """``cors_allowed_origins`` callable: CORS headers only for allowed origins."""
        if not origin:
            return False
        return self.allowed(origin, environ.get("HTTP_HOST"))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
                return None
    return None


class OriginGuard:
    def __init__(
        self,
        app: ASGIApp,
        policy: OriginPolicy,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.on_refused = on_refused  # (origin, peer address), for the audit trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            origin = _header(scope, b"origin")
            if origin is not None and not self.policy.allowed(origin, _header(scope, b"host")):
                if self.on_refused is not None:
                    client = scope.get("client")
                    self.on_refused(origin[:200], client[0] if client else "")
                else:
                    log.info("refused a request from origin %r", origin[:200])
                await refuse(scope, send, 403, REFUSAL)
                return
        await self.app(scope, receive, send)


async def refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """A plain refusal as JSON; a websocket handshake gets the same response
    where the server supports it, else a close before accepting."""
    body = orjson.dumps({"status": "error", "message": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message})
