"""Chat history of a room: recording, system messages, incremental broadcasts.

Every recorded message is committed to the store before anyone hears of it,
so a ``NEW_MESSAGE`` a client saw is never lost to a crash.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from newage.clock import iso_now
from newage.domain.ports.delivery import Outbox
from newage.domain.ports.store import MessageKind, Store
from newage.protocol.names import SYSTEM_IDENTITY, Ev, Namespace
from newage.protocol.outbound import NewMessage

RECENT_ROOMS = 128  # rooms whose latest messages are kept in memory


def new_id() -> str:
    return str(uuid.uuid4())


def request_text(payload: dict[str, Any]) -> str:
    """Text of a request: first non-empty of message, data, data.text,
    data.prompt, prompt (docs/protocol.md)."""
    candidates: list[Any] = [payload.get("message"), payload.get("data")]
    data = payload.get("data")
    if isinstance(data, dict):
        candidates += [data.get("text"), data.get("prompt")]
    candidates.append(payload.get("prompt"))
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value
    return ""


class History:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        audience: Callable[[str], list[str]],
    ) -> None:
        self.store = store
        self.outbox = outbox
        # room -> addresses that hear about its messages (members, assigned
        # extensions, monitors); supplied by the app so history stays small
        self.audience = audience
        self.after_record: list[Callable[[str, str], Awaitable[None]]] = []
        # room -> its latest messages, for the context sent with a request:
        # an LLM_REQUEST then costs the same in a room of any size
        self._recent: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()

    async def latest(self, room: str, limit: int) -> list[dict[str, Any]]:
        """The room's newest ``limit`` messages, oldest first."""
        recent = self._recent.get(room)
        if recent is None or recent.maxlen != limit:
            stored = await self.store.latest_messages(room, limit)
            recent = deque((m.body for m in stored), maxlen=limit)
            self._recent[room] = recent
        self._recent.move_to_end(room)
        while len(self._recent) > RECENT_ROOMS:
            self._recent.popitem(last=False)
        return list(recent)

    def forget(self, room: str) -> None:
        """Edits, deletions and clears change what is recent: read it again."""
        self._recent.pop(room, None)

    async def record(self, room: str, kind: MessageKind, body: dict[str, Any]) -> dict[str, Any]:
        await self.persist(room, kind, body)
        await self.announce(room, kind, body)
        return body

    async def persist(self, room: str, kind: MessageKind, body: dict[str, Any]) -> None:
        """Commit first: whatever clients hear about is already durable."""
        body.setdefault("messageId", new_id())
        body.setdefault("timestamp", iso_now())
        body["roomName"] = room
        await self.store.append_message(room, kind, body)
        recent = self._recent.get(room)
        if recent is not None:
            recent.append(body)

    async def announce(self, room: str, kind: MessageKind, body: dict[str, Any]) -> None:
        news: NewMessage = {"roomName": room, "message": body}
        self.outbox.emit(Namespace.LLM, Ev.NEW_MESSAGE, news, self.audience(room))
        for hook in self.after_record:
            await hook(room, kind)

    async def system(self, room: str, text: str) -> dict[str, Any]:
        body = {
            "messageId": new_id(),
            "identity": SYSTEM_IDENTITY,
            "role": "system",
            "data": text,
            "message": text,
            "timestamp": iso_now(),
            "isSystem": True,
            "fromClient": False,
        }
        return await self.record(room, "system", body)
