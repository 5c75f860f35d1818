"""``LLM_REQUEST`` intake and the room's message request mode (docs/protocol.md).

Order of the checks: well-formed request, requester may send (no
extension, not muted), room and membership, no duplicate open id, targets;
only then is the request recorded (``NEW_MESSAGE``) and dispatched, so a
refused request leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson

from newage.domain.identity.principal import Principal
from newage.domain.llm.parts import Away, Parts
from newage.domain.llm.queue import ExtensionQueues
from newage.domain.llm.requests import Kind, LlmRequest, RequestTracker, TargetState
from newage.domain.llm.routing import Router, parse_targets
from newage.domain.llm.streams import StreamService
from newage.domain.ops import audit
from newage.domain.ports.delivery import Outbox, identity_addr
from newage.domain.ports.store import Store
from newage.domain.rooms.history import History, request_text
from newage.domain.rooms.model import Room
from newage.domain.rooms.mutes import MuteService
from newage.domain.rooms.service import RoomService
from newage.domain.rooms.status import StatusBoard
from newage.errors import (
    ErrorCode,
    NewAgeError,
    conflict,
    forbidden,
    not_found,
    queue_full,
    unavailable,
)
from newage.protocol.acks import OK, Cancelled, RequestAccepted, RequestState
from newage.protocol.llm import LlmRequestIn
from newage.protocol.names import (
    Ev,
    Namespace,
    RequestMode,
    RequestStatus,
    Role,
)
from newage.protocol.outbound import CancelOut, ErrorEvent, LlmRequestBody
from newage.settings import LiveSettings

# Fields a client may not set on its own request message (docs/security.md).
SERVER_FIELDS = frozenset(
    {
        "identity",
        "messageId",
        "timestamp",
        "fromClient",
        "isResponse",
        "isSystem",
        "roomName",
        "responseId",
        "fromLlm",
        "isMerged",
        "mergedFromCount",
        "originalRequestIds",
        "clientId",
        # what the server writes on answers and system messages: a client
        # claiming them would look like the server or an extension
        "source",
        "type",
        "requester",
        "status",
        "role",
        "incomplete",
    }
)
# (requester, socket, request, the extension chosen for it or None) -> ack
Elsewhere = Callable[
    [Principal, str | None, LlmRequestIn, str | None], Awaitable[dict[str, Any] | None]
]
CancelElsewhere = Callable[[str, Principal | None], Awaitable[dict[str, Any] | None]]
MODERATORS = frozenset({"master", "moderator"})
MUTED_TEXT = "You are currently muted and cannot send messages."


def effective_role(room: Room, principal: Principal, declared: Any) -> str:
    """The original protocol's role vocabulary for modes, derived from the room, not
    from what the client claims; ``special`` only from moderators."""
    room_role = room.role(principal.identity)
    if principal.is_admin or room_role is Role.MASTER:
        role = "master"
    elif room_role is Role.MANAGER:
        role = "moderator"
    else:
        role = "guest"
    if declared == "special" and role in MODERATORS:
        return "special"
    return role


def merge(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """HostSubmit: the queued guest messages and the master's, as one request
    carrying the master's fields (docs/protocol.md)."""
    last = messages[-1]
    texts = [t.strip() for t in (request_text(m) for m in messages) if t.strip()]
    merged = dict(last)
    merged["message"] = merged["data"] = "\n\n".join(texts)
    merged["isMerged"] = True
    merged["mergedFromCount"] = len(messages)
    merged["originalRequestIds"] = [m.get("requestId") for m in messages]
    return merged


def newest_within(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The newest messages whose JSON fits in ``budget`` bytes, oldest first
    (a message too big for the whole budget ends the context there)."""
    kept: list[dict[str, Any]] = []
    for message in reversed(messages):
        budget -= len(orjson.dumps(message))
        if budget < 0:
            break
        kept.append(message)
    kept.reverse()
    return kept


class ChatService:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        rooms: RoomService,
        mutes: MuteService,
        history: History,
        router: Router,
        tracker: RequestTracker,
        status: StatusBoard,
        live: LiveSettings,
        streams: StreamService,
        queues: ExtensionQueues,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.rooms = rooms
        self.mutes = mutes
        self.history = history
        self.router = router
        self.tracker = tracker
        self.status = status
        self.live = live
        self.streams = streams
        self.queues = queues
        queues.context_of = self.context
        # the answers now owed are made durable (crash recovery)
        self.on_forward: Callable[[LlmRequest, list[str]], Awaitable[None]] | None = None
        # a cluster: a request no extension here can take, and the cancel of a
        # request not held here, go to the node that can (None: not found)
        self.elsewhere: Elsewhere | None = None
        self.cancel_elsewhere: CancelElsewhere | None = None
        self.lookup_elsewhere: (
            Callable[[str, Principal], Awaitable[dict[str, Any] | None]] | None
        ) = None
        # a cluster: targets on other nodes (hooks set by cluster/requests.py)
        self.parts = Parts(tracker, router, queues)

    async def request(
        self,
        principal: Principal,
        sid: str | None,
        data: LlmRequestIn,
        *,
        here: bool = False,
        chosen: list[str] | None = None,
    ) -> RequestAccepted | RequestState:
        """``sid`` is the requesting socket (None for an HTTP caller);
        ``here``: never forwarded to another node; ``chosen``: the targets
        another node chose for it under the policy."""
        request_id = data.request_id
        if principal.is_extension:
            raise forbidden("Extensions cannot send LLM requests.", requestId=request_id)
        room_name = data.target_room or principal.identity
        if self.mutes.muted(principal.identity, room_name):
            if sid is not None:
                notice: ErrorEvent = {"message": MUTED_TEXT, "requestId": request_id}
                self.outbox.emit(Namespace.LLM, Ev.ERROR, notice, [sid])
            raise forbidden("You are muted.", requestId=request_id)
        room = self.rooms.rooms.get(room_name)
        if room is None or not (principal.is_admin or principal.identity in room.members):
            raise forbidden("Invalid or unauthorized target room.", requestId=request_id)
        existing = self.tracker.get(request_id)
        if existing is not None:
            # a retry never generates again: it learns the first one's state
            if existing.requester != principal.identity:
                raise conflict("Duplicate requestId.", requestId=request_id)
            return {**self.describe(existing), "duplicate": True}
        cap = self.live.current.max_pending_requests_per_client
        if self.tracker.pending_of(principal.client_id) >= cap:
            raise queue_full(
                f"Too many requests in flight ({cap}); wait for an answer.", requestId=request_id
            )
        try:
            return await self._dispatch(principal, room, data, here, chosen)
        except Away as away:
            ack = None
            if self.elsewhere is not None:
                ack = await self.elsewhere(principal, sid, data, away.ext)
            if ack is None:
                raise unavailable(
                    f"Extension {away.ext} did not take the request.", requestId=request_id
                ) from None
            return cast(RequestAccepted | RequestState, ack)  # that node's own intake
        except NewAgeError as exc:
            if exc.code is ErrorCode.UNAVAILABLE and self.elsewhere is not None and not here:
                ack = await self.elsewhere(principal, sid, data, None)
                if ack is not None:  # the holding node's own intake answered
                    return cast(RequestAccepted | RequestState, ack)
            exc.extra.setdefault("requestId", request_id)
            raise

    async def _dispatch(
        self,
        principal: Principal,
        room: Room,
        incoming: LlmRequestIn,
        here: bool = False,
        chosen: list[str] | None = None,
    ) -> RequestAccepted:
        request_id = incoming.request_id
        data = incoming.fields()
        explicit = parse_targets(incoming.target)
        role = effective_role(room, principal, incoming.role)
        mode = room.mode
        targets: list[str] = []
        queued = False
        kind_of_request: str | None = None
        note = "Request received."
        if mode is RequestMode.IMMEDIATE:
            targets = self.parts.choose(room, principal, explicit, here, chosen)
        elif mode is RequestMode.HOST_SUBMIT:
            if role in MODERATORS:
                targets = self.parts.choose(room, principal, explicit, here, chosen)
            else:
                queued = True
                note = "Request queued for the room's master (HostSubmit)."
        elif mode is RequestMode.MASTER_ONLY:
            if role in MODERATORS:
                targets = self.parts.choose(room, principal, explicit, here, chosen)
            else:
                note = "Request recorded but not forwarded (MasterOnly)."
        elif explicit is not None:  # Conversational "@LLM"
            targets = self.parts.choose(room, principal, explicit, here, chosen)
            kind_of_request = "DIRECT_REQUEST"
        else:
            note = "Message recorded (Conversational)."

        self._check_extension_queues(targets)
        body = {k: v for k, v in data.items() if k not in SERVER_FIELDS}
        body.update(
            identity=principal.identity,
            fromClient=True,
            requestId=request_id,
            message=request_text(data),
            requestType=data.get("requestType") or "newMessage",
            targetRoom=room.name,
            mode=mode.value,
        )
        body = await self.history.record(room.name, "request", body)
        request = LlmRequest(
            request_id,
            room.name,
            principal.identity,
            mode,
            Kind.USER,
            body["messageId"],
            owner=principal.client_id,
        )
        self.tracker.add(request)
        if queued:
            await self.store.queue_add(room.name, body["messageId"])
        if not targets:
            request.status = RequestStatus.QUEUED if queued else RequestStatus.NOT_FORWARDED
            request.finished = request.created
            if self.tracker.log is not None:
                self.tracker.log.status(request, request.status.value, None)
        else:
            current = body
            if mode is RequestMode.HOST_SUBMIT:
                waiting = [m.body for m in await self.store.queue_take(room.name)]
                if waiting:
                    current = merge([*waiting, body])
                    if self.tracker.log is not None:
                        held = [str(w.get("requestId")) for w in waiting if w.get("requestId")]
                        self.tracker.log.submitted(held, request.request_id)
            await self.forward(request, room, targets, current, kind_of_request)
        positions = self.queues.positions(request)
        return {
            **OK,
            "message": note,
            "requestId": request_id,
            "messageId": body["messageId"],
            "roomName": room.name,
            "mode": mode.value,
            "forwarded": bool(targets),
            "queued": queued,
            "targets": targets,
            "position": min(positions.values(), default=0),
            "epoch": self.streams.log.epoch,
        }

    def describe(self, request: LlmRequest) -> RequestState:
        """A request's state, for a duplicate ``LLM_REQUEST`` and ``GET_REQUEST``."""
        positions = self.queues.positions(request)
        return {
            **OK,
            "requestId": request.request_id,
            "messageId": request.message_id,
            "roomName": request.room,
            "mode": request.mode.value,
            "requestStatus": request.status.value,
            "targets": list(request.targets),
            "position": min(positions.values(), default=0),
            "responseIds": list(request.responses),
            "answers": [{"identity": e, "text": t} for e, t in request.answers.items()],
            "epoch": self.streams.log.epoch,
        }

    async def find(self, request_id: str, by: Principal) -> RequestState:
        """``GET_REQUEST``, asked of the node holding the request if not here."""
        if self.tracker.get(request_id) is None and self.lookup_elsewhere is not None:
            ack = await self.lookup_elsewhere(request_id, by)
            if ack is not None:
                return cast(RequestState, ack)  # the holding node's own lookup
        return self.lookup(request_id, by)

    def lookup(self, request_id: str, by: Principal) -> RequestState:
        """``GET_REQUEST``: for its requester, its room's members and admins."""
        request = self.tracker.get(request_id)
        room = self.rooms.rooms.get(request.room) if request is not None else None
        allowed = request is not None and (
            by.is_admin
            or by.identity == request.requester
            or (room is not None and by.identity in room.members)
        )
        if request is None or not allowed:
            raise not_found("Request not found.", requestId=request_id)
        return self.describe(request)

    def _check_extension_queues(self, targets: list[str]) -> None:
        cap = self.live.current.max_pending_requests_per_extension
        for target in targets:
            # forwarded and waiting in the server's queue alike
            if self.router.load(target) >= cap:
                raise queue_full(f"Extension {target} has too many requests waiting ({cap}).")

    async def forward(
        self,
        request: LlmRequest,
        room: Room,
        targets: list[str],
        current: dict[str, Any] | None,
        type_: str | None,
        instruction: str | None = None,
    ) -> None:
        context = await self.context(room.name)
        payload: LlmRequestBody = {
            "mode": request.mode.value,
            "requestId": request.request_id,
            "targetRoom": room.name,
            "context": context,
            "requestType": (current or {}).get("requestType") or "newMessage",
        }
        if type_:
            payload["type"] = type_
        if current is not None:
            payload["requestingIdentity"] = request.requester
            payload["currentRequest"] = current
            payload["message"] = request_text(current)
        if instruction is not None:
            payload["instruction"] = instruction
            payload["message"] = instruction
        request.status = RequestStatus.PROCESSING
        for target in targets:
            request.targets[target] = TargetState.PENDING
        local = [t for t in targets if self.router.here(t)]
        away = [t for t in targets if t not in local]
        if self.on_forward is not None:
            await self.on_forward(request, local)
        for target in local:
            # each target its own copy: a queued one gets a fresh context later
            await self.queues.admit(request, target, payload.copy())
        if away:
            await self.parts.send(request, room, away, payload)

    async def context(self, room: str) -> list[dict[str, Any]]:
        """The room's newest messages as an extension gets them, bounded."""
        settings = self.live.current
        return newest_within(
            await self.history.latest(room, settings.extension_context_limit),
            settings.extension_context_bytes,
        )

    async def forget_room(self, room: str) -> None:
        await self.store.queue_clear(room)

    async def cancel(self, request_id: str, by: Principal | None) -> Cancelled:
        """Cancel an open request, for its requester, the master or a manager
        of its room, an admin, or the server itself (``by`` None). It leaves
        its extensions' queues; each extension still on it gets
        ``CANCEL_REQUEST`` (the extension queues what the server forwards,
        so it drops a request it has not started and stops a running one).
        Raises ``not_found``, ``forbidden``, or ``conflict`` once finished."""
        request = self.tracker.get(request_id)
        if request is None:
            if self.cancel_elsewhere is not None:
                ack = await self.cancel_elsewhere(request_id, by)
                if ack is not None:  # the holding node's own cancel answered
                    return cast(Cancelled, ack)
            raise not_found("Request not found.", requestId=request_id)
        if by is not None and not self._may_cancel(request.room, request.requester, by):
            raise forbidden("Unauthorized", requestId=request_id)
        if not request.open:
            # HostSubmit's guest queue and MasterOnly keep requests away from
            # any extension: there is no generation to cancel
            held = request.status in (RequestStatus.QUEUED, RequestStatus.NOT_FORWARDED)
            raise conflict(
                "Request was not forwarded; nothing to cancel."
                if held
                else f"Request already {request.status.value}.",
                requestId=request_id,
                requestStatus=request.status.value,
            )
        waited = self.queues.withdraw(request)  # never sent: nothing to tell its extension
        # the nodes answering some targets end their streams and tell their
        # extensions themselves
        away = await self.parts.cancel(request)
        targets = await self.streams.cancel(request)
        audit.record(
            "request.cancel", request_id, room=request.room, actor=by.identity if by else None
        )
        cancel: CancelOut = {"requestId": request_id, "targetRoom": request.room}
        for ext in (t for t in targets if t not in waited):
            self.outbox.emit(Namespace.LLM, Ev.CANCEL_REQUEST, cancel, [identity_addr(ext)])
        return {**OK, "requestId": request_id, "targets": [*targets, *away]}

    def _may_cancel(self, room_name: str, requester: str | None, by: Principal) -> bool:
        if by.is_admin or (requester is not None and by.identity == requester):
            return True
        room = self.rooms.rooms.get(room_name)
        return room is not None and room.role(by.identity) in (Role.MASTER, Role.MANAGER)
