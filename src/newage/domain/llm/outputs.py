"""An extension's output while it streams: its token streams and relay state."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from newage.domain.llm.requests import LlmRequest
from newage.protocol.names import RequestStatus
from newage.protocol.surrogates import repair


@dataclass(slots=True)
class TokenStream:
    stream_id: str
    num: int
    chunks: dict[int, str] = field(default_factory=dict)
    ended: bool = False

    def text(self) -> str:
        return "".join(self.chunks[i] for i in sorted(self.chunks))


@dataclass(slots=True)
class Output:
    output_id: str
    ext: str
    request: LlmRequest | None  # None: unsolicited, swallowed
    streams: dict[str, TokenStream] = field(default_factory=dict)
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
        return repair("".join(s.text() for s in self.streams.values()))

    @property
    def cancelled(self) -> bool:
        """Chunks of a cancelled request are kept, never relayed."""
        return self.request is not None and self.request.status is RequestStatus.CANCELLED
