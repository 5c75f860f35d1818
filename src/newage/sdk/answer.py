"""An answer to one request, as it arrives: an async iterator of deltas.

The client feeds it the room's events for its ``requestId``. Deltas are
applied in ``seq`` order only (a resumed stream replays from a position
and may overlap what already came live), and every event that carries a whole text (the
end of a stream, a non-stream answer, the recorded response) is checked
against what was yielded: a missing tail is yielded as one last delta, so
the concatenated deltas equal the final text whenever the stream was whole
or resumed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from newage.sdk.errors import NewAgeError
from newage.sdk.events import TERMINAL, Delta


class Answer:
    def __init__(self, request_id: str, room: str | None) -> None:
        self.request_id = request_id
        self.room = room or ""
        self.status = "pending"
        self.position: int | None = None  # place in the extension's queue, when queued
        self.error: NewAgeError | None = None
        self.ack: dict[str, Any] = {}
        self.epoch: str | None = None  # of the server's stream log, for resuming
        # True when the final text is not the deltas' text continued (the
        # extension replaced a piece already relayed): ``text`` is the final one
        self.gap = False
        self._texts: dict[str, str] = {}  # outputId -> text yielded so far
        self._seq: dict[str, int] = {}
        self._last_output = ""
        self._error_message = ""
        self._queue: asyncio.Queue[Delta | None] = asyncio.Queue()
        self._done = asyncio.Event()

    # ------------------------------------------------------------ reading
    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def text(self) -> str:
        """The answer's text; several outputs (several targets) joined by a blank line."""
        return "\n\n".join(t for t in self._texts.values() if t)

    @property
    def last_seq(self) -> int:
        """The position to resume after, in :attr:`last_output`."""
        return self._seq.get(self._last_output, 0)

    @property
    def last_output(self) -> str:
        return self._last_output

    def __aiter__(self) -> Answer:
        return self

    async def __anext__(self) -> Delta:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # a second loop ends at once too
            raise StopAsyncIteration
        return item

    async def wait(self) -> Answer:
        """Until the request reached a final status."""
        await self._done.wait()
        return self

    async def result(self) -> str:
        """The final text; :class:`NewAgeError` when the request failed or was cancelled."""
        await self._done.wait()
        if self.error is not None:
            raise self.error
        return self.text

    # ------------------------------------------------------------ fed by the client
    def on_data(self, payload: dict[str, Any]) -> None:
        output, seq, data = (
            str(payload.get("outputId") or ""),
            payload.get("seq"),
            payload.get("data"),
        )
        if self.done or not isinstance(data, str):
            return
        if isinstance(seq, int):
            if seq != self._seq.get(output, 0) + 1:
                # seen already (a replay overlapping the live stream), or after
                # a hole that a resume's replay fills in order, or, when it
                # cannot, the end's whole text does (catch_up)
                return
            self._seq[output] = seq
        self._last_output = output
        self._add(output, data, seq if isinstance(seq, int) else None)

    def on_whole(self, payload: dict[str, Any]) -> None:
        """A text that is the whole output so far (stream end, non-stream answer, record)."""
        data = payload.get("data")
        if not isinstance(data, str):
            data = payload.get("message")
        if isinstance(data, str):
            self.catch_up(str(payload.get("outputId") or ""), data)

    def catch_up(self, output: str, text: str) -> None:
        sent = self._texts.get(output, "")
        if self.done or text == sent:
            return
        if text.startswith(sent):
            self._add(output, text[len(sent) :], None)
        else:
            self.gap = True
            self._texts[output] = text

    def on_status(self, payload: dict[str, Any]) -> None:
        status = payload.get("status")
        if not isinstance(status, str) or self.done:
            return
        self.status = status
        position = payload.get("position")
        self.position = position if isinstance(position, int) else None
        if status in TERMINAL:
            message = payload.get("message")
            self.finish(status, message if isinstance(message, str) else "")

    def on_error(self, payload: dict[str, Any]) -> None:
        """The extension's ``ERROR``: its message explains the failure that follows."""
        message = payload.get("message")
        if isinstance(message, str):
            self._error_message = message

    def finish(self, status: str, message: str = "") -> None:
        if self.done:
            return
        self.status = status
        if status == "failed":
            text = message or self._error_message or "The request failed."
            self.error = NewAgeError(text, "upstream", {"requestId": self.request_id})
        elif status == "cancelled":
            self.error = NewAgeError("The request was cancelled.", "cancelled")
        elif status not in TERMINAL:  # recorded but not forwarded: nothing will answer
            self.error = NewAgeError(message or f"Request {status}.", "conflict", self.ack)
        self._done.set()
        self._queue.put_nowait(None)

    def _add(self, output: str, text: str, seq: int | None) -> None:
        self._texts[output] = self._texts.get(output, "") + text
        if text:
            self._queue.put_nowait(Delta(self.request_id, output, text, seq, self.room))
