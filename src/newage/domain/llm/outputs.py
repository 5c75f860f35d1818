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

    def text(self) -> str:
        return repair("".join(stream_text(s) for s in self.streams.values()))

    @property
    def cancelled(self) -> bool:
        """Chunks of a cancelled request are kept, never relayed."""
        return self.request is not None and self.request.status is RequestStatus.CANCELLED
