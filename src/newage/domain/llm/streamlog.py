"""The stream log: every relayed chunk of an output, kept for resume and late joiners.

An output's ``SERVER_STREAM_DATA`` events (``seq`` 1, 2, ... exactly as they
were sent, after coalescing) and its ``SERVER_STREAM_END`` are kept a while
after the end, so a client that lost its connection, or joins late, asks for
the chunks after the last ``seq`` it has (``RESUME_STREAM``) instead of
falling back to the history.

:class:`~newage.domain.ports.streamlog.StreamLog` is the port;
:class:`MemoryStreamLog` the embedded implementation (a cluster keeps the
same shape in Redis). A log instance has an ``epoch``, a random id: a client that saw another epoch
(the server restarted, the log is gone) is told so instead of getting a
wrong replay.

Bounds: each output keeps at most ``max_bytes`` (the oldest chunks go
first: a resume from before them is refused), all outputs together at most
``total_bytes`` (the oldest outputs go first), and an ended output is kept
``retention`` seconds. Sizes are the chunk text plus a fixed overhead per
event, close enough to what the dictionaries cost.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

from newage.domain.ports.streamlog import OutputLog

EVENT_OVERHEAD = 200  # bytes counted per kept event besides its text


class MemoryStreamLog:
    def __init__(self, max_bytes: int, total_bytes: int, retention: float) -> None:
        self.epoch = uuid.uuid4().hex[:16]
        self.max_bytes = max_bytes
        self.total_bytes = total_bytes
        self.retention = retention
        self.size = 0
        self._logs: OrderedDict[tuple[str, str], OutputLog] = OrderedDict()
        self._latest: dict[str, str] = {}  # requestId -> its latest outputId

    def configure(self, max_bytes: int, total_bytes: int, retention: float) -> None:
        self.max_bytes, self.total_bytes, self.retention = max_bytes, total_bytes, retention

    def __len__(self) -> int:
        return len(self._logs)

    def _log(self, request_id: str, output_id: str, room: str) -> OutputLog:
        key = (request_id, output_id)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = OutputLog(request_id, output_id, room)
            self._latest[request_id] = output_id
        return log

    def append(self, request_id: str, output_id: str, room: str, payload: dict[str, Any]) -> None:
        if self.max_bytes <= 0:
            return
        log = self._log(request_id, output_id, room)
        seq = payload["seq"]
        cost = len(payload["data"]) + EVENT_OVERHEAD
        log.events.append(payload)
        log.last_seq = seq
        log.end = log.ended_at = None  # an output may continue after its end
        log.size += cost
        self.size += cost
        while log.size > self.max_bytes and log.events:
            dropped = len(log.events.popleft()["data"]) + EVENT_OVERHEAD
            log.size -= dropped
            self.size -= dropped
            log.first_seq = log.events[0]["seq"] if log.events else seq + 1
        if self.size > self.total_bytes:
            self._shrink(log)

    def _shrink(self, keep: OutputLog) -> None:
        for key in list(self._logs):
            if self.size <= self.total_bytes:
                return
            if self._logs[key] is not keep:
                self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        log = self._logs.pop(key)
        self.size -= log.size
        if self._latest.get(log.request_id) == log.output_id:
            del self._latest[log.request_id]

    def end(self, request_id: str, output_id: str, room: str, payload: dict[str, Any]) -> None:
        if self.max_bytes <= 0:
            return
        log = self._log(request_id, output_id, room)
        log.end = payload
        log.ended_at = time.monotonic()

    def get(self, request_id: str, output_id: str | None) -> OutputLog | None:
        output_id = output_id or self._latest.get(request_id)
        return self._logs.get((request_id, output_id)) if output_id else None

    def expire(self) -> int:
        cutoff = time.monotonic() - self.retention
        stale = [
            key
            for key, log in self._logs.items()
            if log.ended_at is not None and log.ended_at <= cutoff
        ]
        for key in stale:
            self._drop(key)
        return len(stale)
