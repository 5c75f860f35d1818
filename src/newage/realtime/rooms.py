"""``/rooms``: rooms, members, roles, moderation and connection policies."""

from __future__ import annotations

from newage.realtime.base import BaseNamespace


class RoomsNamespace(BaseNamespace):
    pass
