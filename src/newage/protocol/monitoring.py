"""Payloads of the monitor's read-only events on ``/debug`` (admins)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, StringConstraints

from newage.protocol.models import Payload

Text = Annotated[str, StringConstraints(max_length=200)]
PAGE_MAX = 200


class GetRequestsIn(Payload):
    request_id: Text | None = Field(None, validation_alias=AliasChoices("requestId"))
    state: Text | None = None
    search: Text | None = None
    offset: int = Field(0, ge=0, le=1_000_000)
    limit: int = Field(50, ge=1, le=PAGE_MAX)


class GetSeriesIn(Payload):
    since: float | None = Field(None, ge=0)


class GetAuditIn(Payload):
    level: Text | None = None
    action: Text | None = None
    actor: Text | None = None
    search: Text | None = None
    before_id: int | None = Field(None, validation_alias=AliasChoices("beforeId"), ge=0)
    limit: int = Field(50, ge=1, le=PAGE_MAX)
