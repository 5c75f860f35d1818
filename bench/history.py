"""Scenario 6's rooms: a data directory with rooms of N messages each.

Written through the store interface while no server runs (10,000 messages
over the wire would take minutes), shaped like what the server records: a
request from the member, then the extension's response, alternately.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from newage.clock import iso_from_epoch
from newage.datadir import DataDir
from newage.domain.ports.records import MemberRecord, RoomRecord
from newage.protocol.names import RequestMode, Role
from newage.store.sqlite import SQLiteStore

QUESTION = "Tell me more about the old lighthouse on the northern cliffs and who kept it. "
ANSWER = (
    "The lighthouse was kept by the Aldren family for three generations; the last keeper, "
    "Mara, wrote a log of every ship that passed and every storm that broke on the rocks. "
) * 3


async def _fill(data: Path, rooms: dict[str, int], member: str, extension: str) -> None:
    store = SQLiteStore(DataDir.at(data).db_path, synchronous="NORMAL")
    await store.open()
    try:
        for room, messages in rooms.items():
            await _room(store, room, messages, member, extension)
    finally:
        await store.close()


async def _room(store: SQLiteStore, room: str, messages: int, member: str, extension: str) -> None:
    start = time.time() - messages
    created = iso_from_epoch(start - 1)
    await store.create_room(
        RoomRecord(
            room,
            RequestMode.IMMEDIATE,
            created,
            member,
            None,
            {member: MemberRecord(member, Role.MASTER, created)},
        )
    )
    for i in range(0, messages, 2):
        request_id = str(uuid.uuid4())
        asked = iso_from_epoch(start + i)
        await store.append_message(
            room,
            "request",
            {
                "requestId": request_id,
                "message": f"{QUESTION}({i})",
                "identity": member,
                "fromClient": True,
                "requestType": "newMessage",
                "targetRoom": room,
                "mode": "Immediate",
                "messageId": str(uuid.uuid4()),
                "timestamp": asked,
                "roomName": room,
            },
        )
        if i + 1 >= messages:
            break
        text = f"{ANSWER}({i + 1})"
        await store.append_message(
            room,
            "response",
            {
                "messageId": str(uuid.uuid4()),
                "responseId": str(uuid.uuid4()),
                "requestId": request_id,
                "identity": extension,
                "data": text,
                "message": text,
                "isResponse": True,
                "fromLlm": True,
                "fromClient": False,
                "outputId": str(uuid.uuid4()),
                "requester": member,
                "status": "completed",
                "incomplete": False,
                "timestamp": iso_from_epoch(start + i + 1),
                "roomName": room,
            },
        )


def fill_history(data: Path, *, rooms: dict[str, int], member: str, extension: str) -> None:
    """Create ``rooms`` (name -> number of messages) with ``member`` as master."""
    asyncio.run(_fill(data, rooms, member, extension))
