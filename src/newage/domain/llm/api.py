"""LLM requests from callers without a socket (the OpenAI-compatible API).

A caller is authenticated exactly like a Socket.IO connection (same trust,
keys and verification cache), names a room or gets one of its own, and its
request goes through :meth:`ChatService.request` like an ``LLM_REQUEST``:
same checks, same history, same routing. The answer is followed through an
:class:`AnswerFeed` registered with the responder before the request is
dispatched, so even an immediate answer is not missed. In a cluster the
request may run on another node, which relays the answer into that feed
(``cluster/answers.py``); ``follow_elsewhere`` replays one held there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from newage.clock import iso_now
from newage.domain.identity.auth import Authenticator
from newage.domain.identity.principal import Principal
from newage.domain.llm.chat import ChatService
from newage.domain.llm.responses import AnswerWatch, Ended, Responder
from newage.domain.llm.resume import Replay, Resumer
from newage.domain.llm.routing import Router
from newage.domain.ports.records import MemberRecord
from newage.domain.rooms.model import Room
from newage.domain.rooms.relations import RelationService
from newage.domain.rooms.service import RoomService
from newage.errors import (
    ErrorCode,
    NewAgeError,
    conflict,
    forbidden,
    not_found,
    unauthenticated,
    unavailable,
)
from newage.protocol.llm import LlmRequestIn
from newage.protocol.names import Namespace, RequestStatus, Role

AUTO = "auto"
API_ROOM_PREFIX = "api:"


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    seq: int = 0  # the chunk's seq in the stream log (SSE ``id:``)


Event = Piece | Ended
# a cluster: an answer held by another node, replayed from there and then
# followed live (the replay, and what came after it); None: no node has it
FollowElsewhere = Callable[[Principal, str, int], Awaitable[tuple[Replay, list[Event]] | None]]


class AnswerFeed:
    """The answer of one extension to one request, as it happens."""

    def __init__(self, ext: str) -> None:
        self.ext = ext
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def chunk(self, ext: str, text: str, seq: int) -> None:
        if ext == self.ext:
            self.queue.put_nowait(Piece(text, seq))

    def ended(self, ext: str, end: Ended) -> None:
        if ext == self.ext:
            self.queue.put_nowait(end)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` passes first."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def result(self) -> Ended:
        while True:
            event = await self.queue.get()
            if isinstance(event, Ended):
                return event


class Feeds:
    """Several callers following one request (a stream and its resumers)."""

    def __init__(self, *feeds: AnswerWatch) -> None:
        self.feeds = list(feeds)

    def chunk(self, ext: str, text: str, seq: int) -> None:
        for feed in self.feeds:
            feed.chunk(ext, text, seq)

    def ended(self, ext: str, end: Ended) -> None:
        for feed in self.feeds:
            feed.ended(ext, end)


@dataclass(slots=True)
class Submission:
    request_id: str
    room: str
    model: str  # the extension that answers
    feed: AnswerFeed
    principal: Principal
    created: int = field(default_factory=lambda: int(time.time()))
    done: bool = False
    prefix: str = ""  # the text before a resume point (what the caller already has)
    resumed: bool = False  # the caller had the opening chunk already
    reader: bool = False  # a GET .../stream reader, counted against its client


def parse_bearer(header: str | None) -> tuple[str, str]:
    """``Bearer <clientId>:<key>`` -> (clientId, key). Keys have no colon,
    so the last one separates them (a clientId may contain colons)."""
    scheme, _, token = (header or "").strip().partition(" ")
    client_id, sep, key = token.strip().rpartition(":")
    if scheme.lower() != "bearer" or not sep or not client_id or not key:
        raise unauthenticated("Expected 'Authorization: Bearer <clientId>:<key>'.")
    return client_id, key


class LlmApi:
    def __init__(
        self,
        auth: Authenticator,
        chat: ChatService,
        rooms: RoomService,
        router: Router,
        relations: RelationService,
        responder: Responder,
        resumer: Resumer,
    ) -> None:
        self.auth = auth
        self.chat = chat
        self.rooms = rooms
        self.router = router
        self.relations = relations
        self.responder = responder
        self.resumer = resumer
        self.follow_elsewhere: FollowElsewhere | None = None
        self._readers: dict[str, int] = {}  # clientId -> its stream readers open

    async def authenticate(self, authorization: str | None, peer: str) -> Principal:
        client_id, key = parse_bearer(authorization)
        result = await self.auth.authenticate(
            Namespace.LLM, {"clientId": client_id, "key": key}, peer
        )
        if result.principal.is_extension:
            raise forbidden("Extensions cannot send LLM requests.")
        return result.principal

    @staticmethod
    def default_room(principal: Principal) -> str:
        return API_ROOM_PREFIX + principal.client_id

    def models(self, principal: Principal) -> list[str]:
        """The extensions ``principal`` may use in its own API room (those
        not answering the heartbeat too: the listing says so)."""
        name = self.default_room(principal)
        room = self.rooms.rooms.get(name)
        if room is None:  # what the room would be once opened
            member = MemberRecord(principal.identity, Role.MASTER, iso_now())
            room = Room(
                name, self.rooms.default_mode(), iso_now(), members={principal.identity: member}
            )
        return self.router.allowed(room, principal, unavailable_too=True, everywhere=True)

    async def open_room(self, principal: Principal, name: str | None) -> Room:
        own = self.default_room(principal)
        name = name or own
        room = self.rooms.rooms.get(name)
        if room is None:
            if name.startswith(API_ROOM_PREFIX) and name != own and not principal.is_admin:
                # or anyone could take another client's default room first
                raise forbidden(f"Room {name} is reserved for another client's API use.")
            return await self.rooms.create_owned(name, principal)
        if not (principal.is_admin or principal.identity in room.members):
            raise forbidden(f"You are not a member of room {name}.")
        return room

    def pick(self, room: Room, principal: Principal, model: str) -> str:
        # a cluster: other nodes' extensions too (the request goes to its node)
        allowed = self.router.allowed(room, principal, everywhere=True)
        if model == AUTO:
            if not allowed:
                raise unavailable("No extension is connected to answer.")
            return self.router.choose(room, principal, None, everywhere=True)[0]
        if model in allowed:
            return model
        online = [*self.router.online(), *self.router.remote()]
        if model in self.relations.model.extensions and model not in online:
            raise unavailable(f"Extension {model} is not connected.")
        raise not_found(
            f"The model '{model}' does not exist or is not available to you.", param="model"
        )

    async def submit(
        self, principal: Principal, room_name: str | None, model: str, fields: dict[str, Any]
    ) -> Submission:
        """Record and dispatch a request; ``fields`` are recorded with it."""
        room = await self.open_room(principal, room_name)
        target = self.pick(room, principal, model)
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        data = LlmRequestIn.model_validate(
            {**fields, "requestId": request_id, "targetRoom": room.name, "target": target}
        )
        feed = AnswerFeed(target)
        self.attach(request_id, feed)
        try:
            ack = await self.chat.request(principal, None, data)
        except BaseException:
            self.detach(request_id, feed)
            raise
        if not ack.get("forwarded"):
            self.detach(request_id, feed)
            raise conflict(f"{ack.get('message')} (room {room.name}, mode {ack['mode']})")
        return Submission(request_id, room.name, target, feed, principal)

    def attach(self, request_id: str, feed: AnswerWatch) -> None:
        watches = self.responder.watches
        current = watches.get(request_id)
        if current is None:
            watches[request_id] = feed
        elif isinstance(current, Feeds):
            current.feeds.append(feed)
        else:
            watches[request_id] = Feeds(current, feed)

    def detach(self, request_id: str, feed: AnswerWatch) -> None:
        watches = self.responder.watches
        current = watches.get(request_id)
        if current is feed:
            del watches[request_id]
        elif isinstance(current, Feeds) and feed in current.feeds:
            current.feeds.remove(feed)
            if not current.feeds:
                del watches[request_id]

    def follow(self, principal: Principal, request_id: str, after_seq: int) -> Submission:
        """A caller picks up an answer's stream after ``after_seq``: what
        the stream log has, then the live rest, in one synchronous step (no
        chunk can fall between the replay and the live feed)."""
        return self._follow(
            principal,
            request_id,
            after_seq,
            self.resumer.replay(principal, request_id, after_seq),
            [],
        )

    async def follow_anywhere(
        self, principal: Principal, request_id: str, after_seq: int
    ) -> Submission:
        """:meth:`follow`, from the node holding the answer when it is not
        here (a cluster): its replay, then its live rest relayed here."""
        cap = self.chat.live.current.max_stream_readers_per_client
        if self._readers.get(principal.client_id, 0) >= cap:
            # each reader holds a connection and a feed of the answer
            raise NewAgeError(
                ErrorCode.QUEUE_FULL,
                f"{cap} streams of this client are being read already "
                "(maxStreamReadersPerClient).",
            )
        sub = await self._follow_anywhere(principal, request_id, after_seq)
        sub.reader = True
        self._readers[principal.client_id] = self._readers.get(principal.client_id, 0) + 1
        return sub

    async def _follow_anywhere(
        self, principal: Principal, request_id: str, after_seq: int
    ) -> Submission:
        resumer = self.resumer
        here = resumer.tracker.get(request_id) is not None or resumer.log.get(request_id, None)
        if not here and self.follow_elsewhere is not None:
            found = await self.follow_elsewhere(principal, request_id, after_seq)
            if found is not None:
                return self._follow(principal, request_id, after_seq, *found)
        return self.follow(principal, request_id, after_seq)

    def _follow(
        self,
        principal: Principal,
        request_id: str,
        after_seq: int,
        replay: Replay,
        later: list[Event],
    ) -> Submission:
        feed = AnswerFeed(replay.ext)
        for seq, text in replay.chunks:
            feed.queue.put_nowait(Piece(text, seq))
        if replay.end is not None:
            status = RequestStatus(replay.end["status"])
            feed.queue.put_nowait(Ended(status, str(replay.end["data"]), None, None))
        else:
            for event in later:
                feed.queue.put_nowait(event)
            if not any(isinstance(event, Ended) for event in later):
                self.attach(request_id, feed)
        sub = Submission(request_id, replay.room, replay.ext, feed, principal)
        sub.prefix, sub.resumed = replay.prefix, after_seq > 0
        return sub

    def finish(self, sub: Submission) -> None:
        if sub.reader and not sub.done:
            left = self._readers.get(sub.principal.client_id, 1) - 1
            if left > 0:
                self._readers[sub.principal.client_id] = left
            else:
                self._readers.pop(sub.principal.client_id, None)
        sub.done = True
        self.detach(sub.request_id, sub.feed)

    async def abandon(self, sub: Submission) -> None:
        """The caller went away before the answer ended: cancel the request."""
        if sub.done:
            return
        self.finish(sub)
        with contextlib.suppress(NewAgeError):  # it may have ended meanwhile
            await self.chat.cancel(sub.request_id, sub.principal)
