"""The cluster as one for the monitor, and the wiring of this package's
cross-node services (docs/cluster.md).

``GET_REQUESTS`` and the trends (``GET_METRICS_SERIES``) ask every other
live node for its part and wait at most ``VIEW_TIMEOUT``: a dead or slow
node is left out and named (``unanswered``). ``/metrics`` stays per process
(Prometheus scrapes each node; it adds the ``instance`` label), with
``newage_cluster_node_info{node}`` naming the node id the monitor shows.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Gauge

from newage.cluster.calls import RemoteCalls
from newage.cluster.node import ClusterNode
from newage.cluster.outbox import ClusterOutbox
from newage.cluster.settings import SharedSettings
from newage.domain.functions.service import FunctionService
from newage.domain.llm.requests import RequestTracker
from newage.domain.llm.routing import Router
from newage.domain.ops.request_log import RequestLog
from newage.domain.ops.series import Series, extension_rows
from newage.domain.ports.peers import Gathered
from newage.settings import LiveSettings

VIEW_TIMEOUT = 2.0  # seconds a view waits for the other nodes


class HasRegistry(Protocol):
    registry: CollectorRegistry


class Wired(Protocol):
    """What this package needs of the services (``services.Services``)."""

    @property
    def live(self) -> LiveSettings: ...
    @property
    def functions(self) -> FunctionService: ...
    @property
    def request_log(self) -> RequestLog: ...
    @property
    def series(self) -> Series: ...
    @property
    def tracker(self) -> RequestTracker: ...
    @property
    def router(self) -> Router: ...
    @property
    def metrics(self) -> HasRegistry: ...


class ClusterPeers:
    """The domain's ``Peers`` port over :class:`ClusterNode` calls."""

    def __init__(self, node: ClusterNode, timeout: float = VIEW_TIMEOUT) -> None:
        self.node = node
        self.timeout = timeout

    async def gather(self, kind: str, payload: Any) -> Gathered:
        others = sorted(self.node.entries)
        answers = await asyncio.gather(
            *(self.node.ask(n, kind, payload, self.timeout) for n in others),
            return_exceptions=True,
        )
        got = Gathered()
        for node, answer in zip(others, answers, strict=True):
            # None: the handler failed there (logged on that node)
            if isinstance(answer, BaseException) or answer is None:
                got.missing.append(node)
            else:
                got.answers[node] = answer
        return got


class ClusterViews:
    def __init__(self, node: ClusterNode, services: Wired) -> None:
        self.node = node
        self.s = services
        peers = ClusterPeers(node)
        services.request_log.peers = peers
        services.series.peers = peers
        node.handlers["requests.page"] = self._page
        node.handlers["requests.get"] = self._get
        node.handlers["series"] = self._series
        info = Gauge(
            "newage_cluster_node_info",
            "This process's node id in its cluster (docs/cluster.md)",
            ["node"],
            registry=services.metrics.registry,
        )
        info.labels(node.id).set(1)

    async def _page(self, payload: list[Any]) -> list[Any]:
        state, search, count = payload
        limit = min(int(count), self.s.live.current.monitor_requests_kept)
        return list(self.s.request_log.page(state, search, 0, limit))

    async def _get(self, request_id: str) -> Any:
        return self.s.request_log.get(request_id)

    async def _series(self, since: float | None) -> list[Any]:
        s = self.s
        return [s.series.view(since), extension_rows(s.tracker, s.router, s.request_log)]


class ClusterWiring:
    """Everything of this package beyond delivery, requests and admin actions."""

    def __init__(self, node: ClusterNode, services: Wired, outbox: ClusterOutbox) -> None:
        self.settings = SharedSettings(node, services.live)
        self.calls = RemoteCalls(node, services.functions, outbox.local)
        outbox.remote_call = self.calls.call
        self.views = ClusterViews(node, services)

    @classmethod
    def of(cls, outbox: object, services: Wired) -> ClusterWiring | None:
        """The wiring when ``outbox`` is a cluster's, else None (one process)."""
        if isinstance(outbox, ClusterOutbox):
            return cls(outbox.node, services, outbox)
        return None

    async def start(self) -> None:
        """After the node joined: the cluster's settings hold here too."""
        await self.settings.adopt()
