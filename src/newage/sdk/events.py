"""Typed events a :class:`~newage.sdk.Client` hands out.

Each keeps the server's payload in ``raw``; the fields are the ones a
program usually needs, read defensively (an older or newer server may leave
some out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _str(payload: dict[str, Any], *names: str) -> str:
    for name in names:
        value = payload.get(name)
        if isinstance(value, str):
            return value
    return ""


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of an answer's text, in order. ``seq`` counts 1, 2, ... per
    output; ``None`` for an answer that came whole (non-stream)."""

    request_id: str
    output_id: str
    text: str
    seq: int | None
    room: str = ""


@dataclass(frozen=True, slots=True)
class RoomMessage:
    """``NEW_MESSAGE``: a request, an answer or a system message recorded in a room."""

    room: str
    identity: str
    text: str
    message_id: str
    request_id: str
    is_response: bool
    is_system: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> RoomMessage:
        """From ``NEW_MESSAGE {roomName, message}`` or a history record."""
        body = payload.get("message")
        record = body if isinstance(body, dict) else payload
        return cls(
            room=_str(payload, "roomName") or _str(record, "roomName", "targetRoom"),
            identity=_str(record, "identity"),
            text=_str(record, "message", "data"),
            message_id=_str(record, "messageId", "responseId"),
            request_id=_str(record, "requestId"),
            is_response=bool(record.get("isResponse")),
            is_system=bool(record.get("isSystem")),
            raw=record,
        )


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """``MEMBER_STATUS_UPDATE``: typing, processing, idle, muted."""

    room: str
    identity: str
    status: str
    timestamp: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> MemberStatus:
        return cls(
            room=_str(payload, "roomName"),
            identity=_str(payload, "identity"),
            status=_str(payload, "status"),
            timestamp=_str(payload, "timestamp"),
            raw=payload,
        )


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """``REQUEST_STATUS_UPDATE`` for one of this client's requests."""

    request_id: str
    room: str
    status: str
    message: str
    position: int | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> RequestStatus:
        position = payload.get("position")
        return cls(
            request_id=_str(payload, "requestId"),
            room=_str(payload, "roomName"),
            status=_str(payload, "status"),
            message=_str(payload, "message"),
            position=position if isinstance(position, int) else None,
            raw=payload,
        )


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """``SERVER_STREAM_END``: one streamed output of an answer ended (any requester's)."""

    room: str
    request_id: str
    output_id: str
    identity: str
    status: str
    text: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> StreamEnd:
        return cls(
            room=_str(payload, "roomName"),
            request_id=_str(payload, "requestId"),
            output_id=_str(payload, "outputId"),
            identity=_str(payload, "identity"),
            status=_str(payload, "status"),
            text=_str(payload, "data"),
            raw=payload,
        )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a room's history, oldest message first."""

    room: str
    number: int
    total: int
    last: bool
    messages: list[dict[str, Any]]


Event = Delta | RoomMessage | MemberStatus | RequestStatus | StreamEnd

TERMINAL = frozenset({"completed", "stopped", "cancelled", "failed"})
