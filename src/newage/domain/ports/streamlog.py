"""The stream log port: relayed chunks of each output, kept for resume and late joiners.

What is kept and for how long is described in ``domain/llm/streamlog.py``,
the embedded implementation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class OutputLog:
    # ``events`` holds the payload dicts themselves: a dict of strings and
    # numbers is not tracked by Python's cyclic GC, a tuple holding one
    # always is, and a long answer keeps thousands of them (full
    # collections of the whole heap grew to hundreds of milliseconds)
    request_id: str
    output_id: str
    room: str
    events: deque[dict[str, Any]] = field(default_factory=deque)
    size: int = 0
    first_seq: int = 1  # the lowest seq still kept
    last_seq: int = 0
    end: dict[str, Any] | None = None
    ended_at: float | None = None

    def after(self, seq: int) -> list[dict[str, Any]]:
        return [payload for payload in self.events if payload["seq"] > seq]


class StreamLog(Protocol):
    epoch: str

    def append(self, request_id: str, output_id: str, room: str, payload: dict[str, Any]) -> None:
        """Keep one relayed chunk (its ``seq`` is in the payload)."""

    def end(self, request_id: str, output_id: str, room: str, payload: dict[str, Any]) -> None:
        """Keep the output's ``SERVER_STREAM_END``; retention starts now."""

    def get(self, request_id: str, output_id: str | None) -> OutputLog | None:
        """One output of a request, or its latest when ``output_id`` is None."""

    def expire(self) -> int:
        """Drop what has been kept past its retention; return how many."""
