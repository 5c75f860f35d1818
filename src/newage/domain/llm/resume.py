"""``RESUME_STREAM``: the chunks a socket missed, then the live ones.

Replay and subscription happen in one synchronous step on the event loop
(no ``await`` between reading the log and adding the socket to the
request's followers), so no chunk relayed meanwhile can fall between them:
the socket gets every ``seq`` after ``afterSeq`` once from this point on.
The replayed events are the ones kept in the stream log, byte for byte what
the room heard. A socket that is in the room anyway (the requester's new
socket) may have heard some live chunks before it asked: a client applies
a chunk only when its ``seq`` is the next one it needs (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from newage.domain.identity.principal import Principal
from newage.domain.llm.requests import LlmRequest, RequestTracker
from newage.domain.llm.streams import StreamService
from newage.domain.ports.delivery import Outbox
from newage.domain.ports.streamlog import OutputLog, StreamLog
from newage.domain.rooms.service import RoomService
from newage.errors import ErrorCode, NewAgeError, not_found
from newage.protocol.acks import OK, Resumed
from newage.protocol.names import Ev, Namespace

LOST = "The stream log was lost (the server restarted); read the history."


@dataclass(frozen=True, slots=True)
class Replay:
    room: str
    ext: str
    chunks: list[tuple[int, str]]
    end: dict[str, Any] | None
    prefix: str  # the text of the kept chunks up to the resume point


def gone(message: str, request_id: str) -> NewAgeError:
    return NewAgeError(ErrorCode.STREAM_GONE, message, requestId=request_id)


class Resumer:
    def __init__(
        self,
        log: StreamLog,
        streams: StreamService,
        tracker: RequestTracker,
        rooms: RoomService,
        outbox: Outbox,
    ) -> None:
        self.log = log
        self.streams = streams
        self.tracker = tracker
        self.rooms = rooms
        self.outbox = outbox
        # a cluster: a request held by another node is resumed there, replaying
        # to this socket (None: no node holds it)
        self.elsewhere: (
            Callable[
                [Principal, str, str, int, str | None, str | None],
                Awaitable[dict[str, Any] | None],
            ]
            | None
        ) = None

    async def resume_anywhere(
        self,
        by: Principal,
        sid: str,
        request_id: str,
        after_seq: int,
        output_id: str | None = None,
        epoch: str | None = None,
    ) -> Resumed:
        """:meth:`resume`, on the node that holds the request when it is not here."""
        here = self.tracker.get(request_id) is not None or self.log.get(request_id, None)
        if not here and self.elsewhere is not None:
            ack = await self.elsewhere(by, sid, request_id, after_seq, output_id, epoch)
            if ack is not None:  # the holding node's own resume answered
                return cast(Resumed, ack)
        return self.resume(by, sid, request_id, after_seq, output_id, epoch)

    def _may_read(self, by: Principal, room_name: str, requester: str | None) -> bool:
        if by.is_admin or (requester is not None and by.identity == requester):
            return True
        room = self.rooms.rooms.get(room_name)
        return room is not None and by.identity in room.members

    def _locate(
        self, by: Principal, request_id: str, after_seq: int, output_id: str | None
    ) -> tuple[LlmRequest | None, OutputLog | None]:
        """The request and its output in the log, once the caller may read
        them and the log still has what comes after ``after_seq``. No output
        yet (None) only for an open request asked from the start."""
        request = self.tracker.get(request_id)
        output = self.log.get(request_id, output_id)
        room = output.room if output is not None else request.room if request else None
        requester = request.requester if request is not None else None
        if room is None or not self._may_read(by, room, requester):
            raise not_found("Request not found.", requestId=request_id)
        if output is None:
            if request is None or not request.open:
                raise gone(
                    "The stream log no longer has this request; read the history.", request_id
                )
            if after_seq > 0:
                raise gone("The stream log does not have that output.", request_id)
        elif after_seq + 1 < output.first_seq or after_seq > output.last_seq:
            raise gone(
                f"The stream log keeps seq {output.first_seq}..{output.last_seq} of this output.",
                request_id,
            )
        return request, output

    def resume(
        self,
        by: Principal,
        sid: str,
        request_id: str,
        after_seq: int,
        output_id: str | None = None,
        epoch: str | None = None,
    ) -> Resumed:
        """Replay to ``sid`` what the log has after ``after_seq`` and follow
        the request live; the ack. Synchronous on purpose (module doc)."""
        if epoch is not None and epoch != self.log.epoch:
            raise gone(LOST, request_id)  # nothing from another epoch is here
        request, output = self._locate(by, request_id, after_seq, output_id)
        ack: Resumed = {
            **OK,
            "requestId": request_id,
            "epoch": self.log.epoch,
            "requestStatus": request.status.value if request is not None else None,
            "outputId": None,
            "complete": False,
            "lastSeq": 0,
            "replayed": 0,
        }
        if output is None:  # nothing relayed yet: everything will come live
            self._follow(request_id, sid)
            return ack
        replay = output.after(after_seq)
        for payload in replay:
            self.outbox.emit(Namespace.LLM, Ev.SERVER_STREAM_DATA, payload, [sid])
        complete = output.end is not None
        if complete:
            self.outbox.emit(Namespace.LLM, Ev.SERVER_STREAM_END, output.end, [sid])
        elif request is not None and request.open:
            self._follow(request_id, sid)
        ack["outputId"] = output.output_id
        ack["complete"] = complete
        ack["lastSeq"] = output.last_seq
        ack["replayed"] = len(replay)
        return ack

    def replay(self, by: Principal, request_id: str, after_seq: int) -> Replay:
        """The same for a caller without a socket (the HTTP API): the
        chunks as (seq, text); the caller follows the rest itself, in the
        same synchronous step."""
        request, output = self._locate(by, request_id, after_seq, None)
        if output is None:
            assert request is not None
            return Replay(request.room, next(iter(request.targets)), [], None, "")
        events = list(output.events)
        if events:
            ext = str(events[0]["identity"])
        else:  # an output ended before its first chunk
            ext = next(iter(request.targets), "") if request is not None else ""
        return Replay(
            output.room,
            ext,
            [(p["seq"], str(p["data"])) for p in events if p["seq"] > after_seq],
            output.end,
            "".join(str(p["data"]) for p in events if p["seq"] <= after_seq),
        )

    def _follow(self, request_id: str, sid: str) -> None:
        followers = self.streams.followers.setdefault(request_id, [])
        if sid not in followers:
            followers.append(sid)
