"""Prometheus metrics, one registry per server instance (tests run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "newage_connections", "Open sockets per namespace", ["namespace"], registry=r
        )
        self.events_in = Counter(
            "newage_events_in", "Events received per namespace", ["namespace"], registry=r
        )
        self.events_out = Counter(
            "newage_events_out", "Event deliveries per namespace", ["namespace"], registry=r
        )
        self.handler_seconds = Histogram(
            "newage_handler_seconds",
            "Time spent handling one event",
            ["namespace"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.sessions = Gauge("newage_sessions", "Identities with a session", registry=r)
        self.active_streams = Gauge(
            "newage_active_streams", "LLM outputs being streamed", registry=r
        )
        self.requests_in_flight = Gauge(
            "newage_requests_in_flight", "LLM requests forwarded and not finished", registry=r
        )
        self.request_seconds = Histogram(
            "newage_request_seconds",
            "LLM request latency from intake to completion or failure",
            ["status"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.stream_chunks = Counter(
            "newage_stream_chunks", "Stream chunks accepted from extensions", registry=r
        )
