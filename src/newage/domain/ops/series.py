"""Trends for the monitor: the server's own counters sampled every
``metricsSampleMs`` into a ring that holds the last hour.

Each point holds rates over the interval before it (requests/s, tokens/s,
failures/s), the mean time to first token of the requests that got one in
that interval, and the open sockets and requests at that moment.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from newage.domain.ops.request_log import RequestLog, Totals
from newage.protocol.acks import SeriesView
from newage.settings import LiveSettings

WINDOW_SECONDS = 3600
FIELDS = ("t", "requests", "tokens", "failures", "firstTokenMs", "connections", "inFlight")


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
