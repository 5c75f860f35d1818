"""The server's own status: version, uptime and the counts an operator looks at."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from newage import __version__
from newage.domain.identity.presence import Presence
from newage.domain.llm.requests import RequestTracker
from newage.domain.llm.streams import StreamService
from newage.domain.rooms.service import RoomService


class ServerInfo:
    def __init__(
        self,
        presence: Presence,
        rooms: RoomService,
        tracker: RequestTracker,
        streams: StreamService,
    ) -> None:
        self.version = __version__
        self.started_at = time.time()
        self.presence = presence
        self.rooms = rooms
        self.tracker = tracker
        self.streams = streams
        self.cluster: Callable[[], dict[str, Any]] | None = None  # the cluster's view, if any

    def uptime(self) -> float:
        return round(time.time() - self.started_at, 3)

    def status(self) -> dict[str, Any]:
        found = {
            "version": self.version,
            "uptimeSeconds": self.uptime(),
            "connections": self.presence.count_by_namespace(),
            "sessions": len(self.presence.sessions),
            "rooms": len(self.rooms.rooms),
            "requestsInFlight": self.tracker.open_count(),
            "streamsInFlight": self.streams.active,
        }
        if self.cluster is not None:
            found["cluster"] = self.cluster()
        return found
