"""A SillyTavern extension that speaks exactly the real wire protocol.

Per generation one ``outputId``; per token a new ``streamId`` with
``CLIENT_STREAM_START``, five data sub-chunks (``CLIENT_STREAM_DATA_FIRST``
for index 0 of the first token only, ``..._LAST`` for index 4,
``..._MIDDLE`` otherwise; each the i-th fifth of the token) and
``CLIENT_STREAM_END``; no end-of-generation event. Like the shipped
extension, ``requestId`` is missing from stream events unless a test passes
one, and non-stream messages carry a random ``requestId``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

from tests.helpers.client import Peer

NS = "/llm"


def split5(token: str) -> list[str]:
    size = math.ceil(len(token) / 5) if token else 0
    return [token[i * size : min((i + 1) * size, len(token))] if size else "" for i in range(5)]


def token_events(
    output_id: str,
    token: str,
    *,
    first: bool,
    request_id: str | None = None,
    final: bool = False,
    status: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """One token as its own stream, as (event, payload): START, the five
    data sub-chunks, END (``status`` on the END: the explicit end)."""
    base: dict[str, Any] = {"streamId": str(uuid.uuid4()), "outputId": output_id}
    base["target"] = "server"
    if request_id is not None:
        base["requestId"] = request_id
    events = [("CLIENT_STREAM_START", {"type": 1, "numStreams": 5, **base})]
    for index, part in enumerate(split5(token)):
        if index == 4:
            event, type_ = "CLIENT_STREAM_DATA_LAST", 6
        elif index == 0 and first:
            event, type_ = "CLIENT_STREAM_DATA_FIRST", 4
        else:
            event, type_ = "CLIENT_STREAM_DATA_MIDDLE", 5
        events.append((event, {"type": type_, "chunkIndex": index, "data": part, **base}))
    end: dict[str, Any] = {"type": 3, **base}
    if final:
        end["final"] = True
    if status is not None:
        end["status"] = status
    events.append(("CLIENT_STREAM_END", end))
    return events


class FakeExtension:
    def __init__(self, peer: Peer, identity: str) -> None:
        self.peer = peer
        self.identity = identity

    async def next_request(self, timeout: float = 5, predicate: Any = None) -> dict[str, Any]:
        return await self.peer.next(NS, "LLM_REQUEST", predicate, timeout=timeout)  # type: ignore[no-any-return]

    def requests(self) -> list[dict[str, Any]]:
        return self.peer.received(NS, "LLM_REQUEST")

    async def token(
        self,
        output_id: str,
        token: str,
        *,
        first: bool,
        request_id: str | None = None,
        final: bool = False,
        status: str | None = None,
    ) -> str:
        """One token as its own stream; returns the streamId. ``status`` goes
        on the END (the explicit end: ``stopped``)."""
        events = token_events(
            output_id, token, first=first, request_id=request_id, final=final, status=status
        )
        for event, payload in events:
            await self.peer.emit(NS, event, payload)
        return str(events[0][1]["streamId"])

    async def stream(
        self,
        tokens: Sequence[str],
        *,
        request_id: str | None = None,
        output_id: str | None = None,
        final: bool = False,
        status: str | None = None,
    ) -> str:
        """One generation, token by token; returns its outputId."""
        output_id = output_id or str(uuid.uuid4())
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            await self.token(
                output_id,
                token,
                first=i == 0,
                request_id=request_id,
                final=final and last,
                status=status if last else None,
            )
        return output_id

    async def message(
        self, text: str, request_id: str | None = None, status: str | None = None
    ) -> None:
        payload = {
            "type": 0,
            "data": text,
            "source": "client",
            "requestId": request_id or str(uuid.uuid4()),
            "outputId": str(uuid.uuid4()),
        }
        if status is not None:
            payload["status"] = status
        await self.peer.emit(NS, "message", payload)

    async def retry_chunk(self, output_id: str, stream_id: str, index: int, data: str) -> None:
        """Replace sub-chunk ``index`` of the token sent as ``stream_id``."""
        await self.peer.emit(
            NS,
            "CLIENT_STREAM_DATA_RETRY",
            {
                "type": 7,
                "streamId": stream_id,
                "outputId": output_id,
                "chunkIndex": index,
                "data": data,
            },
        )

    async def fail_chunk(self, output_id: str, stream_id: str, index: int = 0) -> None:
        """Report that the token sent as ``stream_id`` failed (the output fails)."""
        await self.peer.emit(
            NS,
            "CLIENT_STREAM_DATA_FAILED",
            {
                "type": 8,
                "streamId": stream_id,
                "outputId": output_id,
                "chunkIndex": index,
                "data": "",
            },
        )

    async def error(self, message: str = "生成文本时出错") -> None:
        await self.peer.emit(
            NS,
            "ERROR",
            {"type": "ERROR", "message": message, "error": {"x": 1}, "requestId": None},
        )

    async def stop_processing(self) -> None:
        await self.peer.emit(NS, "STOP_PROCESSING", {})
