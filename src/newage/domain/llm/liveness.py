"""Is each extension really answering? Stalls, heartbeat, states.

Engine.IO's own ping proves that a socket is up, not that the extension
behind it works: a browser answers it from its network stack even while the
page's script is busy or stuck. So the server also sends every extension
socket ``PING_EXTENSION`` with an ack, answered by the extension's own
code; an extension none of whose sockets acks within ``heartbeatTimeout``
is unavailable: it gets no new request until it answers again, and a
request with nobody else to go to fails at once (``unavailable``) instead
of waiting for its timeout.

A running request with no chunk for ``stallTimeout`` is reported to its
requester as ``stalled`` (once; ``processing`` again with the next chunk);
``requestTimeout`` still fails it later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from newage.domain.identity.presence import Presence
from newage.domain.llm.queue import ExtensionQueues
from newage.domain.llm.requests import RequestTracker
from newage.domain.llm.responses import Responder
from newage.domain.llm.routing import Router
from newage.domain.ports.delivery import Outbox
from newage.logs import log
from newage.protocol.names import Ev, Namespace
from newage.protocol.outbound import Ping
from newage.settings import LiveSettings


class Liveness:
    def __init__(
        self,
        router: Router,
        presence: Presence,
        tracker: RequestTracker,
        queues: ExtensionQueues,
        responder: Responder,
        outbox: Outbox,
        live: LiveSettings,
    ) -> None:
        self.router = router
        self.presence = presence
        self.tracker = tracker
        self.queues = queues
        self.responder = responder
        self.outbox = outbox
        self.live = live
        # a cluster: the states of the other nodes' extensions
        self.elsewhere: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None
        self.last_heartbeat: dict[str, float] = {}  # extension -> wall time of its last ack

    # ------------------------------------------------------------------ stalls
    def check_stalls(self) -> None:
        stall = self.live.current.stall_timeout / 1000
        now = time.monotonic()
        for ext in self.tracker.extensions():
            since = self.tracker.head_since(ext)
            head = self.tracker.head(ext)
            if head is None or since is None or head.stalled or not head.open:
                continue
            if now - since >= stall:
                head.stalled = True
                self.responder.notify(head, "stalled", target=ext)

    def stall_interval(self) -> float:
        return max(0.05, min(1.0, self.live.current.stall_timeout / 4000))

    # ------------------------------------------------------------------ heartbeat
    def heartbeat_interval(self) -> float:
        interval = self.live.current.heartbeat_interval
        return interval / 1000 if interval > 0 else 1.0

    async def beat(self) -> None:
        """One heartbeat round over every connected extension."""
        if self.live.current.heartbeat_interval <= 0:
            self.router.unavailable.clear()
            return
        exts = self.router.connected()
        results = await asyncio.gather(*(self._alive(ext) for ext in exts))
        for ext, alive in zip(exts, results, strict=True):
            if alive:
                self.last_heartbeat[ext] = time.time()
                if ext in self.router.unavailable:
                    log.info("extension %s answers the heartbeat again", ext)
                    self.router.unavailable.discard(ext)
            elif ext not in self.router.unavailable:
                log.warning("extension %s missed the heartbeat: unavailable", ext)
                self.router.unavailable.add(ext)
        for ext in list(self.router.unavailable):
            if ext not in exts:
                self.router.unavailable.discard(ext)  # gone: its next connect starts fresh

    async def _alive(self, ext: str) -> bool:
        timeout = self.live.current.heartbeat_timeout / 1000
        sids = self.presence.full_sids(ext, Namespace.LLM)

        async def one(sid: str) -> bool:
            ping: Ping = {"t": time.time()}
            try:
                await self.outbox.call(Namespace.LLM, sid, Ev.PING_EXTENSION, ping, timeout)
            except Exception:  # no ack in time, or the socket went
                return False
            return True

        return any(await asyncio.gather(*(one(sid) for sid in sids)))

    # ------------------------------------------------------------------ states
    def state(self, ext: str) -> dict[str, Any]:
        in_flight = self.tracker.in_flight(ext)
        last = self.tracker.last_answer.get(ext)
        beat = self.last_heartbeat.get(ext)
        return {
            "identity": ext,
            "state": "generating" if in_flight else "idle",
            "available": ext not in self.router.unavailable,
            "inFlight": in_flight,
            "queueLength": self.queues.length(ext),
            "lastAnswerAt": last,
            "lastHeartbeatAt": beat,
        }

    def states(self) -> list[dict[str, Any]]:
        return [self.state(ext) for ext in self.router.connected()]

    async def all_states(self) -> list[dict[str, Any]]:
        """This process's extensions, then (a cluster) the other nodes'."""
        mine = self.states()
        return mine + (await self.elsewhere() if self.elsewhere is not None else [])
