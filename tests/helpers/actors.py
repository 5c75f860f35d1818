"""Shortcuts for tests: trusted principals with live sockets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from newage.protocol.names import ClientKind
from tests.helpers.client import Peer, auth
from tests.helpers.fake_extension import FakeExtension
from tests.helpers.server import RunningServer

DECLARED = {
    ClientKind.MONITOR: "monitor",
    ClientKind.SILLYTAVERN: "SillyTavern",
    ClientKind.CLIENT: "web-app",
}


async def connect(
    server: RunningServer,
    peers: Callable[..., Peer],
    client_id: str,
    kind: ClientKind = ClientKind.CLIENT,
    namespaces: Sequence[str] = ("/", "/llm", "/rooms"),
    identity: str | None = None,
    **extra: Any,
) -> Peer:
    """Trust ``client_id`` (keeping an existing key) and open ``namespaces``."""
    assert server.app is not None
    key = server.keys.get(client_id)
    if key is None:
        key = server.keys[client_id] = await server.client(client_id, kind)
    peer = peers(**extra.pop("peer_options", {}))
    data = auth(client_id, key, clientType=DECLARED[kind], **extra)
    if identity is not None:
        data["identity"] = identity
    for namespace in namespaces:
        await peer.open(namespace, data)
    peer.identity = identity or client_id  # type: ignore[attr-defined]
    return peer


async def admin(server: RunningServer, peers: Callable[..., Peer], **kw: Any) -> Peer:
    return await connect(server, peers, "admin", ClientKind.MONITOR, **kw)


async def extension(
    server: RunningServer, peers: Callable[..., Peer], name: str = "SillyTavern-1", **kw: Any
) -> Peer:
    return await connect(server, peers, name, ClientKind.SILLYTAVERN, **kw)


async def fake_extension(
    server: RunningServer, peers: Callable[..., Peer], name: str = "SillyTavern-1", **kw: Any
) -> FakeExtension:
    """An extension on ``/llm`` (and ``/rooms``) speaking the real wire protocol."""
    kw.setdefault("namespaces", ("/llm",))
    peer = await extension(server, peers, name, **kw)
    return FakeExtension(peer, name)
