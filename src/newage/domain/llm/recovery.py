"""Shutdown and crash recovery of the answers extensions owe.

Every target of a forwarded request is a durable *pending answer* until its
outcome is recorded; while it streams, its text so far is saved every
``PARTIAL_SAVE_INTERVAL`` seconds. New pending answers are written in the
same once-a-second transaction (one commit per request would cut the
request intake to a third), so a crash loses at most the last second of
either. So:

* on SIGTERM, before any connection closes, every open request fails the
  usual way (its requester hears ``failed``; history keeps the partial text,
  marked incomplete), and the outbound queues get a moment to drain;
* after a crash, the next start closes what was left open: each pending
  answer is recorded as a failed, incomplete response with the text saved
  last (at most a second behind), and the room gets a system message;
* in a cluster every pending answer carries the id of the node that owes it
  (``owner``): a starting node closes only those of nodes not alive, and a
  node that dies has its answers closed by one survivor (``close``), the
  same way. Claiming them in the store is atomic, so they close once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Collection

from newage.domain.llm.requests import Kind, LlmRequest, RequestTracker, TargetState
from newage.domain.llm.responses import Responder
from newage.domain.llm.streams import StreamService
from newage.domain.ports.records import PendingAnswer, PendingText
from newage.domain.ports.store import Store
from newage.domain.rooms.history import History
from newage.logs import log
from newage.protocol.names import RequestMode, RequestStatus

PARTIAL_SAVE_INTERVAL = 1.0
DRAIN_TIMEOUT = 2.0  # at shutdown, how long the last events may take to go out
SHUTDOWN_REASON = "The server is shutting down."
CRASH_REASON = "The server stopped before the answer was complete."
RESTARTED = "The server restarted"
NODE_STOPPED = "A server process stopped"


class OpenAnswers:
    def __init__(
        self,
        store: Store,
        tracker: RequestTracker,
        streams: StreamService,
        responder: Responder,
        history: History,
        room_exists: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.streams = streams
        self.responder = responder
        self.history = history
        self.room_exists = room_exists
        # (request, ext) -> (outputId, Output.version) of the text saved
        self._saved: dict[tuple[str, str], tuple[str, int]] = {}
        self._unsaved: dict[tuple[str, str], PendingAnswer] = {}  # not written yet
        self.owner = ""  # this process's node id in a cluster

    async def opened(self, request: LlmRequest, targets: list[str]) -> None:
        for ext in targets:
            self._unsaved[(request.request_id, ext)] = PendingAnswer(
                request.request_id,
                ext,
                request.room,
                request.requester,
                request.mode.value,
                request.kind.value,
                owner=self.owner,
            )

    async def settled(self, request_id: str, ext: str) -> None:
        self._saved.pop((request_id, ext), None)
        if self._unsaved.pop((request_id, ext), None) is None:
            await self.store.pending_done(request_id, ext)

    async def save_partials(self) -> None:
        """New pending answers, and the text so far of every answer being
        streamed if it changed."""
        if self._unsaved:
            fresh, self._unsaved = list(self._unsaved.values()), {}
            await self.store.pending_put(fresh)
        changed: list[PendingText] = []
        for output in list(self.streams.current.values()):
            request = output.request
            if request is None or output.done or not request.open:
                continue
            key = (request.request_id, output.ext)
            saved = (output.output_id, output.version)
            if self._saved.get(key) == saved:
                continue
            text = output.text()
            if text:
                changed.append(PendingText(key[0], key[1], output.output_id, text))
            self._saved[key] = saved
        if changed:  # one transaction, not one write per answer
            await self.store.pending_texts(changed)

    async def recover(self, alive: Collection[str] = ()) -> int:
        """At start: close the answers a crash left open (in a cluster, those
        of nodes not in ``alive``); how many there were."""
        left = await self.store.pending_claim(self.owner, alive=alive)
        closed = await self.close(left, RESTARTED)
        if closed:
            log.warning("closed %d answer(s) left open by the last run", closed)
        return closed

    async def close(self, left: list[PendingAnswer], why: str) -> int:
        """Record each of ``left`` (claimed by this process) as a failed,
        incomplete answer, and tell each room once; how many there were."""
        rooms: dict[str, list[str]] = {}
        for answer in left:
            if not self.room_exists(answer.room):
                await self.store.pending_done(answer.request_id, answer.ext)
                continue
            # this node may hold the request itself: a Broadcast whose part
            # the dead node answered (docs/cluster.md); once that target was
            # counted failed, the answer is only recorded (part: no second
            # final status)
            request = self.tracker.get(answer.request_id)
            if request is None or request.targets.get(answer.ext) is not TargetState.PENDING:
                held = request is not None
                request = LlmRequest(
                    answer.request_id,
                    answer.room,
                    answer.requester,
                    RequestMode(answer.mode),
                    Kind(answer.kind),
                    None,
                    targets={answer.ext: TargetState.PENDING},
                    part=held,
                )
                if not held:
                    self.tracker.add(request)
            output_id = answer.output_id or str(uuid.uuid4())
            await self.responder.respond(
                request, answer.ext, answer.text, output_id, RequestStatus.FAILED, CRASH_REASON
            )
            rooms.setdefault(answer.room, []).append(answer.request_id)
        for room, ids in rooms.items():
            await self.history.system(
                room,
                f"[System] {why}; {len(ids)} unfinished answer(s) "
                f"({', '.join(ids)}) were kept as incomplete.",
            )
        return len(left)

    async def shut_down(self, drained: Callable[[], bool]) -> None:
        """Fail every open request, then give the news a moment to go out."""
        extensions = set(self.streams.current) | set(self.tracker.extensions())
        for ext in extensions:
            await self.streams.fail(ext, None, SHUTDOWN_REASON)  # what it is streaming
            for request in self.tracker.queued(ext):
                # recorded too, so the history shows what never got an answer
                await self.responder.respond(
                    request, ext, "", str(uuid.uuid4()), RequestStatus.FAILED, SHUTDOWN_REASON
                )
        if extensions:
            log.info("shutting down: failed the open requests of %d extension(s)", len(extensions))
        deadline = time.monotonic() + DRAIN_TIMEOUT
        # the queues belong to python-engineio's writers, which signal nothing
        while not drained() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
