"""The SDK's one exception type.

It lives here, not in ``newage.errors``, so that a program using the SDK
needs nothing of the server. ``code`` is the server's error code when the
server refused something (``forbidden``, ``not_found``, ``queue_full``, ...)
and one of the SDK's own when the failure happened on this side:
``unavailable`` (not connected), ``timeout`` (no ack in time), ``upstream``
(the extension failed the request), ``cancelled`` (the request was
cancelled).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NewAgeError(Exception):
    def __init__(self, message: str, code: str = "internal", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"

    @classmethod
    def from_payload(cls, payload: Any, default: str = "Request refused.") -> NewAgeError:
        """From an error ack, an ``ERROR`` event or a connect refusal's data."""
        if isinstance(payload, Mapping):
            message = payload.get("message")
            error = payload.get("error")
            if not isinstance(message, str) and isinstance(error, Mapping):
                message = error.get("message")
            code = payload.get("code")
            if not isinstance(code, str) and isinstance(error, Mapping):
                code = error.get("code")
            return cls(
                message if isinstance(message, str) else default,
                code if isinstance(code, str) else "internal",
                dict(payload),
            )
        return cls(payload if isinstance(payload, str) else default, "internal", payload)


def check_ack(ack: Any) -> dict[str, Any]:
    """The ack as a dict, or :class:`NewAgeError` when it reports a failure."""
    if isinstance(ack, Mapping):
        if ack.get("status") == "error" or ack.get("success") is False:
            raise NewAgeError.from_payload(ack)
        return dict(ack)
    if isinstance(ack, list):  # the legacy bare-array acks
        return {"status": "ok", "items": ack}
    raise NewAgeError(f"Unexpected answer from the server: {ack!r}", "internal", ack)
