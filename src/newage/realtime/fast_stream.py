"""The cheap path for the seven inbound events of each streamed token.

Per token the extension sends CLIENT_STREAM_START, five data sub-chunks and
CLIENT_STREAM_END. For a well-formed event from an authenticated extension
this path parses the packet once with orjson, checks the few fields the
stream service reads, and calls it: no socket.io packet objects, no generic
dispatch, no pydantic model, no per-event latency histogram. Anything else
(a malformed payload, a non-extension, a failed-chunk report, an ack id)
returns False and takes the full path, whose models and errors stay the
reference: this path never accepts what the full path would refuse, and
never reports anything itself.

Measured (bench/, ``python -m bench.run``): see docs/performance.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from newage.domain.identity.principal import ConnMode
from newage.protocol.llm import CHUNK_MAX, ID_MAX, INDEX_MAX
from newage.protocol.names import Ev, StreamType
from newage.protocol.surrogates import lenient_loads
from newage.realtime.engine import STREAM_FRAME_HEAD

if TYPE_CHECKING:
    from newage.realtime.llm import LlmNamespace
    from newage.realtime.server import NewAgeServer
    from newage.services import Services

JSON_AT = len(STREAM_FRAME_HEAD)
DATA_TYPES = {
    Ev.CLIENT_STREAM_DATA_FIRST.value: StreamType.STREAM_DATA_FIRST.value,
    Ev.CLIENT_STREAM_DATA_MIDDLE.value: StreamType.STREAM_DATA_MIDDLE.value,
    Ev.CLIENT_STREAM_DATA_LAST.value: StreamType.STREAM_DATA_LAST.value,
    Ev.CLIENT_STREAM_DATA_RETRY.value: StreamType.STREAM_DATA_RETRY.value,
}
# plain values: an enum member's lookup costs more than the comparison, and
# this runs seven times per token
START, END = Ev.CLIENT_STREAM_START.value, Ev.CLIENT_STREAM_END.value
TYPE_START, TYPE_END = StreamType.STREAM_START.value, StreamType.STREAM_END.value
FULL = ConnMode.FULL


def loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if "\\ud" not in text and "\\uD" not in text:
            raise
        return lenient_loads(text)  # half of an emoji, sliced by JavaScript


def _id(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= ID_MAX


def _int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


class FastStreamPath:
    def __init__(self, namespace: LlmNamespace, services: Services, sio: NewAgeServer) -> None:
        self.namespace = namespace
        self.presence = services.presence
        self.manager = sio.manager
        self.streams = services.streams
        self.chunks = services.metrics.stream_chunks
        self.soft_limit = sio.soft_limit
        sio.eio.newage_fast_frame = self.handle
        # plain counters, added to the Prometheus ones when scraped (a
        # Prometheus counter takes a lock on every increment)
        self.events = 0
        self.chunk_count = 0
        self.flushed = 0

    @property
    def handled(self) -> int:
        """Events this path has taken since start (tests check it is active)."""
        return self.flushed + self.events

    def flush_metrics(self) -> None:
        if self.events:
            self.namespace.m_events_in.inc(self.events)
            self.flushed += self.events
            self.events = 0
        if self.chunk_count:
            self.chunks.inc(self.chunk_count)
            self.chunk_count = 0

    async def handle(self, eio_sid: str, frame: str) -> bool:
        if len(frame) > self.soft_limit:
            return False  # the full path answers with a clear error
        try:
            event, payload = loads(frame[JSON_AT:])
        except (orjson.JSONDecodeError, ValueError, TypeError, RecursionError):
            return False
        if type(payload) is not dict:
            return False
        sid = self.manager.sid_from_eio_sid(eio_sid, "/llm")
        ref = self.presence.sockets.get(sid) if sid is not None else None
        if ref is None or ref.mode is not FULL or not ref.principal.is_extension:
            return False
        ext = ref.principal.identity
        stream_id = payload.get("streamId")
        if not _id(stream_id):
            return False
        assert isinstance(stream_id, str)
        expected = DATA_TYPES.get(event)
        if expected is not None:
            index = payload.get("chunkIndex")
            text = payload.get("data", "")
            if payload.get("type") != expected or not _int(index, 0, INDEX_MAX):
                return False
            assert isinstance(index, int)
            if type(text) is not str or len(text) > CHUNK_MAX:
                return False
            self.events += 1
            self.chunk_count += 1
            await self.streams.data(ext, stream_id, index, text, expected)
            return True
        if event == START:
            output_id = payload.get("outputId")
            num = payload.get("numStreams", 5)
            if payload.get("type") != TYPE_START or not _id(output_id):
                return False
            if not _int(num, 0, INDEX_MAX):
                return False
            self.events += 1
            await self.streams.start(ext, stream_id, str(output_id), payload.get("requestId"))
            return True
        if event == END:
            final = payload.get("final", False)
            if payload.get("type") != TYPE_END or type(final) is not bool:
                return False
            if "status" in payload:
                return False  # an explicit end (stopped...): the full path reads it
            self.events += 1
            await self.streams.end(ext, stream_id, final)
            return True
        return False
