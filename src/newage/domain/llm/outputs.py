"""An extension's output while it streams: its token streams and relay state."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from newage.domain.llm.requests import LlmRequest
from newage.protocol.names import RequestStatus
from newage.protocol.surrogates import repair


def stream_text(chunks: dict[int, str]) -> str:
    return "".join(chunks[i] for i in sorted(chunks))


@dataclass(slots=True)
class Output:
    output_id: str
    ext: str
    request: LlmRequest | None  # None: unsolicited, swallowed
    # streamId -> its chunks by index. One plain dict per token, no object
    # and no tuple: a dict of ints and strings is not tracked by Python's
    # cyclic GC, whose full collections otherwise walk every token of
    # every open answer (hundreds of milliseconds at a few hundred streams)
    streams: dict[str, dict[int, str]] = field(default_factory=dict)
    last_stream: str | None = None
    last_activity: float = field(default_factory=time.monotonic)
    seq: int = 0
    pending: list[tuple[str, int, int, str]] = field(default_factory=list)
    flush: asyncio.TimerHandle | None = None
    done: bool = False
    continued: bool = False  # more of an output that had already ended
    held: str = ""  # a high UTF-16 half waiting for its partner in the next chunk
    size: int = 0  # UTF-8 bytes received, against maxAnswerBytes
    # The text so far, kept as it grows (the partial save asks for it every
    # second, and rebuilding it from every token's chunks cost hundreds of
    # milliseconds of loop time per second at a few hundred long answers):
    # a chunk after the last one of the newest stream is appended; anything
    # else (a retry or repeat, a late chunk of an older stream) has it
    # rebuilt once from ``streams``. ``version`` counts the changes.
    parts: list[str] = field(default_factory=list)
    last_index: int = -1  # the newest stream's highest chunk index
    rebuild: bool = False
    version: int = 0

    def begin(self, stream_id: str) -> None:
        """A new token stream; its chunks follow the earlier streams'."""
        self.streams[stream_id] = {}
        self.last_stream = stream_id
        self.last_index = -1

    def put(self, stream_id: str, chunks: dict[int, str], index: int, text: str) -> None:
        """Keep ``text`` as chunk ``index`` of ``stream_id`` (``chunks``)."""
        chunks[index] = text
        self.version += 1
        if stream_id != self.last_stream or index <= self.last_index:
            self.rebuild = True
            return
        self.last_index = index
        if not self.rebuild:
            self.parts.append(text)

    def text(self) -> str:
        if self.rebuild:
            self.parts = [stream_text(s) for s in self.streams.values()]
            self.rebuild = False
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return repair(self.parts[0]) if self.parts else ""

    @property
    def cancelled(self) -> bool:
        """Chunks of a cancelled request are kept, never relayed."""
        return self.request is not None and self.request.status is RequestStatus.CANCELLED
