"""What an :class:`~newage.sdk.Extension` is asked: one forwarded ``LLM_REQUEST``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def request_text(data: dict[str, Any]) -> str:
    """The text to answer, where our SillyTavern extension looks for it."""
    current = data.get("currentRequest")
    candidates = [data.get("message"), data.get("instruction"), data.get("prompt")]
    if isinstance(current, dict):
        candidates.insert(2, current.get("message"))
    return next((c for c in candidates if isinstance(c, str) and c), "")


def _chat_messages(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value):
        return [dict(m) for m in value]
    return None


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    text: str
    room: str
    requester: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Request:
        return cls(
            request_id=str(data.get("requestId")),
            text=request_text(data),
            room=str(data.get("targetRoom") or ""),
            requester=str(data.get("requestingIdentity") or ""),
            raw=data,
        )

    @property
    def current(self) -> dict[str, Any]:
        """The request as recorded: every field its sender added."""
        current = self.raw.get("currentRequest")
        return current if isinstance(current, dict) else {}

    @property
    def context(self) -> list[dict[str, Any]]:
        """The room's latest messages, oldest first."""
        context = self.raw.get("context")
        return [m for m in context if isinstance(m, dict)] if isinstance(context, list) else []

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Chat messages for a chat-completion backend.

        A request made through the OpenAI-compatible API carries its own
        ``messages``; for any other, the room's context becomes the
        conversation (answers as ``assistant``, requests as ``user``, system
        notices left out) and the request text its last user turn.
        """
        given = _chat_messages(self.current.get("messages"))
        if given is not None:
            return given
        own = self.current.get("messageId")
        messages: list[dict[str, Any]] = []
        for item in self.context:
            if item.get("isSystem") or (own and item.get("messageId") == own):
                continue
            text = item.get("message")
            if not isinstance(text, str):
                text = item.get("data")
            if isinstance(text, str) and text:
                role = "assistant" if item.get("isResponse") else "user"
                messages.append({"role": role, "content": text})
        messages.append({"role": "user", "content": self.text})
        return messages
