"""``/``: presence only. A socket here starts the identity's session; the
room notices (``MEMBER_JOINED``, ``WARNING``, ...) are mirrored here for
clients written against the original, which sent them on ``/``."""

from __future__ import annotations

from newage.realtime.base import BaseNamespace


class DefaultNamespace(BaseNamespace):
    pass
