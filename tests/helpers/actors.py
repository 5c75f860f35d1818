"""Shortcuts for tests: trusted principals with live sockets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    """Trust ``client_id`` (keeping an existing key) and open ``namespaces``.

    The key is cached in ``server.keys`` and reused for the same client; a
    test that needs a key of its own asks ``server.client`` for one.
    ``peer_options`` go to the Peer (``transports``, ``headers``).
    """
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


async def room(
    boss: Peer, name: str, members: Mapping[str, str], mode: str | None = None
) -> dict[str, Any]:
    """Create room ``name`` as ``boss``, add ``members`` (identity -> role) and
    set ``mode``; every step must be acknowledged ok. Returns the created room."""
    made = await boss.call("/rooms", "CREATE_ROOM", {"roomName": name})
    assert made["status"] == "ok", made
    for identity, role in members.items():
        ack = await boss.call(
            "/rooms", "ADD_CLIENT_TO_ROOM", {"identity": identity, "roomName": name, "role": role}
        )
        assert ack["status"] == "ok", (identity, role, ack)
    if mode is not None:
        ack = await boss.call(
            "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": name, "mode": mode}
        )
        assert ack["status"] == "ok", (mode, ack)
    return made["room"]  # type: ignore[no-any-return]
