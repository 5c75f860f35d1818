"""Trends for the monitor: the server's own counters sampled every
``metricsSampleMs`` into a ring that holds the last hour.

Each point holds rates over the interval before it (requests/s, tokens/s,
failures/s), the mean time to first token of the requests that got one in
that interval, and the open sockets and requests at that moment.

In a cluster each node samples its own counters; :meth:`Series.view_all`
sums the nodes' points per sampling interval (docs/cluster.md).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from newage.domain.llm.requests import RequestTracker
from newage.domain.llm.routing import Router
from newage.domain.ops.request_log import RequestLog, Totals
from newage.domain.ports.peers import Peers
from newage.protocol.acks import SeriesView
from newage.settings import LiveSettings

WINDOW_SECONDS = 3600
FIELDS = ("t", "requests", "tokens", "failures", "firstTokenMs", "connections", "inFlight")
SUMMED = ("requests", "tokens", "failures", "connections", "inFlight")
# a merged interval is shown once every node has sampled in it: this long
# (a share of the interval) after its end
SETTLE_SHARE = 0.25


@dataclass(slots=True)
class _Last:
    at: float
    totals: Totals


class Series:
    def __init__(
        self,
        log: RequestLog,
        live: LiveSettings,
        connections: Callable[[], int],
        in_flight: Callable[[], int],
    ) -> None:
        self.log = log
        self.live = live
        self.connections = connections
        self.in_flight = in_flight
        self.points: deque[tuple[float, ...]] = deque(maxlen=self._capacity())
        self.peers: Peers | None = None  # a cluster: the other nodes' series
        self._last = _Last(time.time(), self._snapshot())

    def _capacity(self) -> int:
        return max(10, WINDOW_SECONDS * 1000 // self.live.current.metrics_sample_ms)

    def interval(self) -> float:
        return self.live.current.metrics_sample_ms / 1000

    def _snapshot(self) -> Totals:
        t = self.log.totals
        return Totals(t.requests, t.tokens, t.failures, t.first_tokens, t.first_token_ms)

    async def sample(self) -> None:
        now = time.time()
        totals = self._snapshot()
        last = self._last
        span = max(now - last.at, 1e-3)
        firsts = totals.first_tokens - last.totals.first_tokens
        ttft = (totals.first_token_ms - last.totals.first_token_ms) / firsts if firsts else -1.0
        if self.points.maxlen != self._capacity():  # metricsSampleMs changed
            self.points = deque(self.points, maxlen=self._capacity())
        self.points.append(
            (
                round(now, 3),
                round((totals.requests - last.totals.requests) / span, 3),
                round((totals.tokens - last.totals.tokens) / span, 3),
                round((totals.failures - last.totals.failures) / span, 3),
                round(ttft, 1),
                float(self.connections()),
                float(self.in_flight()),
            )
        )
        self._last = _Last(now, totals)

    def view(self, since: float | None) -> SeriesView:
        """Column-wise (what a chart library takes), points after ``since``;
        a missing time to first token is null."""
        points = [p for p in self.points if since is None or p[0] > since]
        columns: dict[str, list[float | None]] = {name: [] for name in FIELDS}
        for point in points:
            for name, value in zip(FIELDS, point, strict=True):
                columns[name].append(None if name == "firstTokenMs" and value < 0 else value)
        return {
            "intervalMs": self.live.current.metrics_sample_ms,
            "windowSeconds": WINDOW_SECONDS,
            "series": columns,
            "totals": {
                "requests": self.log.totals.requests,
                "tokens": self.log.totals.tokens,
                "failures": self.log.totals.failures,
            },
        }

    async def view_all(
        self, since: float | None, extensions: list[dict[str, Any]]
    ) -> tuple[SeriesView, list[dict[str, Any]], list[str]]:
        """:meth:`view` and ``extensions`` of every node (a cluster): the
        points summed per interval, the other nodes' extensions with their
        ``node``; and the nodes that did not answer in time."""
        mine = self.view(since)
        if self.peers is None:
            return mine, extensions, []
        got = await self.peers.gather("series", since)
        views = [mine]
        for node, (view, theirs) in sorted(got.answers.items()):
            views.append(cast(SeriesView, view))
            extensions = extensions + [{**ext, "node": node} for ext in theirs]
        merged = merge(views, self.live.current.metrics_sample_ms, time.time())
        return merged, extensions, got.missing


def merge(views: list[SeriesView], interval_ms: int, now: float) -> SeriesView:
    """Several nodes' views as one: each point falls in the interval that
    ends at the next multiple of ``interval_ms``; within one, a node's points
    are averaged (two may land there as the nodes' clocks drift), then the
    nodes are added up (the time to first token: their mean). Only
    intervals every node has had time to sample are shown, each once, at its
    end: a client asking ``since`` the last one it saw misses none."""
    step = interval_ms / 1000
    buckets: dict[float, list[dict[str, list[float]]]] = {}
    for index, view in enumerate(views):
        columns = view["series"]
        for i, t in enumerate(columns["t"]):
            end = round(math.ceil(cast(float, t) / step - 1e-9) * step, 3)
            if end > now - step * SETTLE_SHARE:
                continue
            seen = buckets.setdefault(end, [{} for _ in views])
            for name in FIELDS[1:]:
                value = columns[name][i]
                if value is not None:
                    seen[index].setdefault(name, []).append(value)
    out: dict[str, list[float | None]] = {name: [] for name in FIELDS}
    for end in sorted(buckets):
        nodes: list[dict[str, float]] = [
            {k: sum(v) / len(v) for k, v in n.items()} for n in buckets[end]
        ]
        out["t"].append(end)
        for name in SUMMED:
            out[name].append(round(sum(n.get(name, 0.0) for n in nodes), 3))
        firsts = [n["firstTokenMs"] for n in nodes if "firstTokenMs" in n]
        out["firstTokenMs"].append(round(sum(firsts) / len(firsts), 1) if firsts else None)
    totals = {k: sum(v["totals"].get(k, 0) for v in views) for k in views[0]["totals"]}
    return {
        "intervalMs": interval_ms,
        "windowSeconds": WINDOW_SECONDS,
        "series": out,
        "totals": totals,
    }


def extension_rows(
    tracker: RequestTracker, router: Router, log: RequestLog
) -> list[dict[str, Any]]:
    """The trends page's table: this node's extensions, busy or idle."""
    return [
        {
            "identity": ext,
            "state": "busy" if tracker.in_flight(ext) else "idle",
            "queueLength": tracker.in_flight(ext),
            **log.extension_stats(ext),
        }
        for ext in router.online()
    ]
