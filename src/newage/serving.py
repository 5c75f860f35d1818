"""How the ASGI server runs the app (``asgiServer``: uvicorn, or granian as
an optional extra): options shared by ``newage serve`` and the test servers,
and the process limits raised at start."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from newage.errors import ErrorCode, NewAgeError
from newage.logs import log
from newage.realtime.direct_ws import DirectProtocol
from newage.realtime.server import hard_payload_limit
from newage.settings import Settings

CLOSING_TIMEOUT = 5.0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    trusted = list(settings.forwarded_allow_ips)
    return {
        "http": "httptools",
        "ws": DirectProtocol if settings.uvicorn_ws == "newage" else settings.uvicorn_ws,
        "ws_per_message_deflate": False,
        "ws_max_size": hard_payload_limit(settings) + 1024,
        # X-Forwarded-For is believed only from the listed proxies; with none
        # listed it is ignored, so a client cannot pick its own address.
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
    }


class GranianServer:
    """granian's embedded server in the running event loop, so the app keeps
    one process and one loop as under uvicorn (granian's usual mode forks
    workers). Before it stops, ``closing`` fails the open requests, as
    GracefulServer does for uvicorn."""

    def __init__(self, asgi: Any, settings: Settings, host: str, port: int) -> None:
        try:
            from granian.constants import HTTPModes, Interfaces
            from granian.server.embed import Server
        except ImportError:
            raise NewAgeError(
                ErrorCode.BAD_SETTINGS,
                "asgiServer granian: granian is not installed (pip install 'newage[granian]')",
            ) from None
        self.server = Server(
            asgi,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            http=HTTPModes.http1,
            websockets=True,
            # our own logging is already set up; granian's would replace it
            log_enabled=False,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())

    async def stop(self, closing: Callable[[], Awaitable[None]] | None = None) -> None:
        if closing is not None:
            try:
                await asyncio.wait_for(closing(), CLOSING_TIMEOUT)
            except Exception:
                log.exception("failing the open requests at shutdown failed")
        self.server.stop()  # type: ignore[no-untyped-call]
        if self.task is not None:
            await asyncio.wait_for(self.task, CLOSING_TIMEOUT * 2)

    async def run(self, closing: Callable[[], Awaitable[None]]) -> None:
        """Serve until SIGINT or SIGTERM, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        assert self.task is not None
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({self.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.task.done():
            self.task.result()  # a failed start-up raises here
            return
        with contextlib.suppress(asyncio.CancelledError):
            await self.stop(closing)


# Allocations of container objects between two young collections (Python's
# default 700). Each young collection moves what is in flight at that moment
# (coroutines, futures, timers of the streams being relayed) into the older
# generations, and the oldest is collected in full once that has added up to
# a quarter of what it holds: every few seconds at a few hundred streams, each
# time walking every chunk of every open answer and stream log with the loop
# stopped. 20,000 makes full collections minutes apart. A young collection
# costs more the higher this is: about 20 ms at 50,000 in a storm of 1,500
# connects/s (each leaves a few dozen objects in cycles for the collector),
# and capacity was the same at 20,000 and 50,000 (docs/performance.md).
YOUNG_THRESHOLD = 20_000
MIDDLE_THRESHOLD = 20


def tune_gc() -> None:
    """Freeze what start-up built and make the cyclic GC's collections rarer.

    The objects of start-up (modules, classes, the wired app: about 100,000)
    live as long as the process; frozen, no collection walks them again.
    Measured in docs/performance.md, "Garbage collection pauses".
    """
    gc.collect()
    gc.freeze()
    oldest = gc.get_threshold()[2]
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, oldest)


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; the new soft limit.

    Every connection is a descriptor: at a typical soft limit of 1024 a flood
    of idle sockets left no room to accept anyone else.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return soft
