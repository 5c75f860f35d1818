"""A typed asyncio SDK for newage: :class:`Client` sends requests and reads
rooms, :class:`Extension` answers requests. See docs/sdk.md.

Needs ``aiohttp`` (python-socketio's client transport): install
``newage[sdk]``.
"""

from newage.sdk.answer import Answer
from newage.sdk.client import Client, Subscription
from newage.sdk.errors import NewAgeError
from newage.sdk.events import (
    Delta,
    Event,
    HistoryPage,
    MemberStatus,
    RequestStatus,
    RoomMessage,
    StreamEnd,
)
from newage.sdk.extension import Extension, Handler
from newage.sdk.request import Request

__all__ = [
    "Answer",
    "Client",
    "Delta",
    "Event",
    "Extension",
    "Handler",
    "HistoryPage",
    "MemberStatus",
    "NewAgeError",
    "Request",
    "RequestStatus",
    "RoomMessage",
    "StreamEnd",
    "Subscription",
]
