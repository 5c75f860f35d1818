"""``/debug``: debug mode, server status and log reading (admins, extensions)."""

from __future__ import annotations

from newage.realtime.base import BaseNamespace


class DebugNamespace(BaseNamespace):
    pass
