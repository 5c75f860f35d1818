"""Waiting without guessing: a barrier on one connection, and polling with a deadline.

``settle`` relies on two properties of the server: what a call makes the
server emit is queued before that call's ack, and each connection's events
are handled in arrival order. So once a peer's own round trip comes back,
everything the server queued for it before (on any namespace of the same
connection) has been received. Forwarded ``FUNCTION_CALL``s are detached
from that order and need their own wait.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

from tests.helpers.client import Peer


async def settle(peer: Peer, namespace: str) -> None:
    """One ack round trip on ``peer``: what the server sent it before has arrived."""
    ack = await peer.call(namespace, "UNKNOWN_EVENT", {})
    assert ack["status"] == "error" and ack["message"].startswith("Unknown event"), ack


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 5, interval: float = 0.02
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail after ``timeout`` seconds.

    For effects no peer is told about (state another process changes, a
    socket the server closes on its own schedule); where an event or an ack
    says it, wait for that instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        await asyncio.sleep(interval)
