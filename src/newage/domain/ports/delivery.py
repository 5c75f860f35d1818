"""What the domain needs from the transport, and nothing more.

Domain services talk to clients only through :class:`Outbox`; the realtime
layer implements it on top of Socket.IO. Addresses are plain strings built by
the helpers below so that a chat room, an identity and a clientId can never
collide even when they share a name; a bare string is a socket id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

IDENTITY, CLIENT, ROOM = "id", "cid", "room"  # address kinds


def identity_addr(identity: str) -> str:
    return f"{IDENTITY}:{identity}"


def client_addr(client_id: str) -> str:
    return f"{CLIENT}:{client_id}"


def room_addr(room: str) -> str:
    return f"{ROOM}:{room}"


def split_addr(addr: str) -> tuple[str, str]:
    """``(kind, name)`` of an address; a socket id has no kind (``""``)."""
    kind, sep, name = addr.partition(":")
    return (kind, name) if sep else ("", addr)


class Outbox(Protocol):
    def emit(
        self,
        namespace: str,
        event: str,
        data: Any,
        to: Sequence[str] | None = None,
        *,
        skip_extensions: bool = False,
    ) -> None:
        """Send to every socket of ``namespace`` in any address of ``to``
        (each socket once), or to the whole namespace when ``to`` is None.

        Synchronous: the packets are queued before it returns, so what a
        handler emits goes out before its ack, in call order, and timer
        callbacks can send too."""

    async def enter_room(self, identity: str, room: str) -> None:
        """Mirror a new chat-room membership onto the identity's live sockets."""

    async def leave_room(self, identity: str, room: str) -> None: ...

    async def disconnect(self, sid: str, namespace: str) -> None: ...

    async def call(self, namespace: str, sid: str, event: str, data: Any, timeout: float) -> Any:
        """Emit with an ack and wait for it; raise TimeoutError when none comes."""

    async def sent(self, sid: str, namespace: str) -> bool:
        """Wait until what was queued for socket ``sid`` has gone out to the
        transport; False when the socket is gone (stop sending to it)."""
