"""How a chat message's body is kept in a row (shared by every store)."""

from __future__ import annotations

from typing import Any

import orjson

from newage.domain.ports.store import StoredMessage


def encode_body(kind: str, body: dict[str, Any]) -> bytes:
    """A response carries its text as both ``data`` and ``message`` (the
    wire has both); the row keeps it once and :func:`decode_message` restores ``data``."""
    if kind == "response" and "data" in body and body["data"] == body.get("message"):
        return orjson.dumps({k: v for k, v in body.items() if k != "data"})
    return orjson.dumps(body)


def decode_message(seq: int, room: str, kind: Any, raw: bytes | str) -> StoredMessage:
    body = orjson.loads(raw)
    if kind == "response" and "data" not in body and "message" in body:
        body["data"] = body["message"]  # stored once, see encode_body
    return StoredMessage(seq=seq, room=room, kind=kind, body=body)
