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

from typing import Any

from newage.domain.ports import Outbox
from newage.domain.principal import Principal
from newage.domain.requests import RequestTracker
from newage.domain.rooms import RoomService
from newage.domain.streamlog import StreamLog
from newage.domain.streams import StreamService
from newage.errors import ErrorCode, NewAgeError, not_found
from newage.protocol.names import Ev, Namespace

LOST = "The stream log was lost (the server restarted); read the history."


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

    def _may_read(self, by: Principal, room_name: str, requester: str | None) -> bool:
        if by.is_admin or (requester is not None and by.identity == requester):
            return True
        room = self.rooms.rooms.get(room_name)
        return room is not None and by.identity in room.members

    def resume(
        self,
        by: Principal,
        sid: str,
        request_id: str,
        after_seq: int,
        output_id: str | None = None,
        epoch: str | None = None,
    ) -> dict[str, Any]:
        """Replay to ``sid`` what the log has after ``after_seq`` and follow
        the request live; the ack. Synchronous on purpose (module doc)."""
        if epoch is not None and epoch != self.log.epoch:
            raise gone(LOST, request_id)  # nothing from another epoch is here
        request = self.tracker.get(request_id)
        output = self.log.get(request_id, output_id)
        room = output.room if output is not None else request.room if request else None
        requester = request.requester if request is not None else None
        if room is None or not self._may_read(by, room, requester):
            raise not_found("Request not found.", requestId=request_id)
        ack: dict[str, Any] = {
            "status": "ok",
            "success": True,
            "requestId": request_id,
            "epoch": self.log.epoch,
            "requestStatus": request.status.value if request is not None else None,
        }
        if output is None:
            if request is None or not request.open:
                raise gone(
                    "The stream log no longer has this request; read the history.", request_id
                )
            if after_seq > 0:
                raise gone("The stream log does not have that output.", request_id)
            # nothing relayed yet: everything will come live
            self._follow(request_id, sid)
            return {**ack, "outputId": None, "complete": False, "lastSeq": 0, "replayed": 0}
        if after_seq + 1 < output.first_seq or after_seq > output.last_seq:
            raise gone(
                f"The stream log keeps seq {output.first_seq}..{output.last_seq} of this output.",
                request_id,
            )
        replay = output.after(after_seq)
        for payload in replay:
            self.outbox.emit(Namespace.LLM, Ev.SERVER_STREAM_DATA, payload, [sid])
        complete = output.end is not None
        if complete:
            self.outbox.emit(Namespace.LLM, Ev.SERVER_STREAM_END, output.end, [sid])
        elif request is not None and request.open:
            self._follow(request_id, sid)
        return {
            **ack,
            "outputId": output.output_id,
            "complete": complete,
            "lastSeq": output.last_seq,
            "replayed": len(replay),
        }

    def _follow(self, request_id: str, sid: str) -> None:
        followers = self.streams.followers.setdefault(request_id, [])
        if sid not in followers:
            followers.append(sid)
