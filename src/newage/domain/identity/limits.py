"""Sliding-window counters for the rate limits (failed logins, key issuance,
handshakes). Memory is bounded whatever the spread of keys an attacker uses."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

from newage.errors import ErrorCode, NewAgeError

MAX_KEYS = 100_000


class WindowLimiter:
    """At most ``limit()`` hits per key in any ``window`` seconds.

    ``limit`` is read at every check so a settings change applies at once.
    """

    def __init__(self, limit: Callable[[], int], window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[Hashable, deque[float]] = {}

    def _recent(self, key: Hashable, now: float) -> int:
        times = self._hits.get(key)
        if times is None:
            return 0
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._hits[key]
        return len(times)

    def blocked(self, key: Hashable) -> bool:
        return self._recent(key, time.monotonic()) >= self.limit()

    def hit(self, key: Hashable) -> None:
        now = time.monotonic()
        self._recent(key, now)
        times = self._hits.setdefault(key, deque())
        times.append(now)
        # a spray of keys (addresses, clientIds) cannot grow this without bound
        if len(self._hits) > MAX_KEYS:
            self._hits.pop(next(iter(self._hits)))
        while len(times) > self.limit() + 1:
            times.popleft()

    def take(self, key: Hashable) -> bool:
        """Count a hit unless the key is over its limit; False when refused."""
        if self.blocked(key):
            return False
        self.hit(key)
        return True


def rate_limited(message: str) -> NewAgeError:
    return NewAgeError(ErrorCode.RATE_LIMITED, message)
