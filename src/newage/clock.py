"""Timestamps in the wire format: ISO-8601 UTC with milliseconds and ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_now() -> str:
    return iso(datetime.now(UTC))


def iso_from_epoch(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


def parse_iso(value: str) -> datetime:
    """Parse an ISO timestamp; naive values are taken as UTC."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def epoch_from_iso(value: str) -> float:
    return parse_iso(value).timestamp()


def monotonic() -> float:
    return time.monotonic()
