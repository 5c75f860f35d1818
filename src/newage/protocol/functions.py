"""Inbound payload models of ``/debug``.

``READ_LOG`` fields stay loosely typed on purpose: the original coerces
``page`` and ``pageSize`` with ``parseInt`` and reports each problem with
its own message, in a fixed order (docs/protocol.md); the domain does that.
The model only insists on an object.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from newage.protocol.models import Payload


class ReadLogIn(Payload):
    filename: Any = Field(None, validation_alias=AliasChoices("filename", "fileName"))
    level: Any = None
    page: Any = None
    page_size: Any = Field(None, validation_alias=AliasChoices("pageSize", "page_size"))
    search: Any = None
