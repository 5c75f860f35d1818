"""Which extensions answer a request, and the payload they get.

An explicit ``target`` (string or list) must name connected extensions the
requester may use in that room (every extension under Free/Broadcast and for
admins, else those assigned to the room or to the requester's client room,
or members of the room). Without a target the server picks among those:
all of them under Broadcast, otherwise the one with the fewest requests in
flight (ties: the first in connection order).

In a cluster (``remote`` set) the intake of the node a requester uses also
counts the extensions of the other nodes, with the load their nodes last
published (docs/cluster.md): Broadcast reaches all of them, and the least
loaded may be another node's (ties go to this node's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from newage.domain.identity.presence import Presence
from newage.domain.identity.principal import Principal
from newage.domain.llm.requests import LlmRequest, RequestTracker
from newage.domain.ports.delivery import Outbox
from newage.domain.rooms.model import Room
from newage.domain.rooms.relations import RelationService
from newage.errors import bad_request, unavailable
from newage.protocol.names import ConnectionPolicy, Ev, Namespace
from newage.protocol.outbound import LlmRequestBody, LlmRequestOut

MAX_TARGETS = 32


def parse_targets(value: Any) -> list[str] | None:
    """``None`` when absent; a de-duplicated list otherwise."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        if len(value) > MAX_TARGETS:
            raise bad_request(f"At most {MAX_TARGETS} targets.")
        return list(dict.fromkeys(value))
    raise bad_request("Invalid LLM request data.")


class Router:
    def __init__(
        self,
        presence: Presence,
        relations: RelationService,
        tracker: RequestTracker,
        outbox: Outbox,
    ) -> None:
        self.presence = presence
        self.relations = relations
        self.tracker = tracker
        self.outbox = outbox
        self.backlog: Callable[[str], int] = lambda ext: 0  # requests waiting for ext
        self.unavailable: set[str] = set()  # connected, but missed the heartbeat
        # a cluster: the extensions that take requests on other nodes only,
        # with their load as last known
        self.remote: Callable[[], dict[str, int]] = dict

    def connected(self) -> list[str]:
        return [e for e in self.relations.model.extensions if self.presence.extension_online(e)]

    def online(self) -> list[str]:
        """Connected extensions that answer the heartbeat: those that get requests."""
        return [e for e in self.connected() if e not in self.unavailable]

    def load(self, ext: str) -> int:
        if not self.here(ext):
            remote = self.remote().get(ext)
            if remote is not None:
                return remote
        return self.tracker.in_flight(ext) + self.backlog(ext)

    def here(self, ext: str) -> bool:
        """``ext`` takes requests on this node."""
        return self.presence.extension_online(ext)

    def allowed(
        self,
        room: Room,
        requester: Principal,
        unavailable_too: bool = False,
        everywhere: bool = False,
    ) -> list[str]:
        """Connected extensions ``requester`` may use in ``room`` (and that
        answer the heartbeat, unless ``unavailable_too``), this node's first;
        ``everywhere``: those of the other nodes too."""
        online = self.connected() if unavailable_too else self.online()
        if everywhere:
            online += [e for e in self.remote() if not self.here(e)]
        if requester.is_admin or self.relations.model.policy in (
            ConnectionPolicy.FREE,
            ConnectionPolicy.BROADCAST,
        ):
            return online
        allowed = set(self.relations.for_requester(room.name, requester))
        allowed.update(i for i in room.members if i in online)
        return [e for e in online if e in allowed]

    def room_extensions(self, room: Room) -> list[str]:
        """Candidates for background thinking: assigned to or members of the room."""
        assigned = set(self.relations.for_room(room.name))
        assigned.update(room.members)
        return [e for e in self.online() if e in assigned]

    def choose(
        self,
        room: Room,
        requester: Principal,
        explicit: list[str] | None,
        everywhere: bool = False,
        vouched: bool = False,
    ) -> list[str]:
        """The targets of a request; ``everywhere``: other nodes' extensions
        may be among them (not for ``explicit`` ones: such a request goes
        whole to their node); ``vouched``: another node chose ``explicit``
        under the policy, this one only checks they can take it."""
        allowed = self.allowed(room, requester, everywhere=everywhere)
        if explicit is not None:
            for target in explicit:
                if not self.presence.extension_online(target):
                    raise unavailable(f"Target extension {target} is not connected.")
                if target in self.unavailable:
                    raise unavailable(f"Target extension {target} is not answering (heartbeat).")
                if target not in allowed and not vouched:
                    raise bad_request(f"Target extension {target} is not available to this room.")
            return explicit
        if not allowed:
            if self.unavailable.intersection(self.connected()):
                raise unavailable(
                    "No extension can answer: every one connected is unavailable "
                    "(not answering the heartbeat)."
                )
            raise unavailable("No extension is available for this room.")
        if self.relations.model.policy is ConnectionPolicy.BROADCAST:
            return allowed
        return [min(allowed, key=lambda e: (self.load(e), allowed.index(e)))]

    def instance(self, target: str) -> str | None:
        """The one ``/llm`` socket of ``target`` that gets its next request.

        An identity may be live in several tabs; each would answer, so a
        request goes to one of them: the socket still answering earlier
        requests, else the newest (after a reload, the page that stays)."""
        sids = self.presence.full_sids(target, Namespace.LLM)
        if not sids:
            return None
        for request in self.tracker.queued(target):
            busy = request.sockets.get(target)
            if busy in sids:
                return busy
        return sids[-1]

    async def send(self, target: str, payload: LlmRequestBody, request: LlmRequest) -> None:
        sid = self.instance(target)
        if sid is None:  # gone since it was chosen: its disconnect fails the request
            return
        request.sockets[target] = sid
        out: LlmRequestOut = {**payload, "target": target}
        self.outbox.emit(Namespace.LLM, Ev.LLM_REQUEST, out, [sid])
