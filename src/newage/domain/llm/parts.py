"""One request, targets on several nodes of a cluster (docs/cluster.md).

A request lives on its extension's node. When its targets are on several
nodes (``Broadcast`` reaches every node's extensions), the node that took it
records it and holds it, answers its own targets, and hands each other
node its *part*: that node answers its targets as usual (queue, streams,
stream log, pending answers) but leaves the request's final status to the
holder, which hears how each part ended and says it once. Without a cluster
nothing here is used: every target is local.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from newage.domain.identity.principal import Principal
from newage.domain.llm.queue import ExtensionQueues
from newage.domain.llm.requests import LlmRequest, RequestTracker, TargetState
from newage.domain.llm.routing import Router
from newage.domain.rooms.model import Room
from newage.protocol.names import RequestStatus
from newage.protocol.outbound import LlmRequestBody, StatusDetail

# (request, room, other nodes' targets, payload) -> {target: why it failed}
Spread = Callable[[LlmRequest, Room, list[str], LlmRequestBody], Awaitable[dict[str, str]]]
Opened = Callable[[LlmRequest, list[str]], Awaitable[None]]


class Away(Exception):
    """The one target chosen takes requests on another node: the whole
    request goes there (its intake, history and queue are that node's)."""

    def __init__(self, ext: str) -> None:
        super().__init__(ext)
        self.ext = ext


class Parts:
    def __init__(self, tracker: RequestTracker, router: Router, queues: ExtensionQueues) -> None:
        self.tracker = tracker
        self.router = router
        self.queues = queues
        # set by the cluster: hand targets to their nodes; cancel those parts
        # (returning the targets still open there)
        self.spread: Spread | None = None
        self.cancel_parts: Callable[[LlmRequest], Awaitable[list[str]]] | None = None

    def choose(
        self,
        room: Room,
        principal: Principal,
        explicit: list[str] | None,
        here: bool,
        chosen: list[str] | None,
    ) -> list[str]:
        """The targets of a request taken on this node; ``here``: another
        node forwarded it (it stays here); ``chosen``: by that node."""
        if chosen is not None:
            return self.router.choose(room, principal, chosen, vouched=True)
        everywhere = self.spread is not None and not here
        targets = self.router.choose(room, principal, explicit, everywhere=everywhere)
        if len(targets) == 1 and not self.router.here(targets[0]):
            raise Away(targets[0])
        return targets

    async def send(
        self, request: LlmRequest, room: Room, away: list[str], payload: LlmRequestBody
    ) -> None:
        """Hand ``away`` (targets on other nodes) to their nodes; a target no
        node took fails at once, recorded as any failed answer."""
        self.tracker.hold(request)
        failed = {t: f"Extension {t} is not connected." for t in away}
        if self.spread is not None:
            failed = await self.spread(request, room, away, payload)
        for ext, reason in failed.items():
            await self.queues.responder.respond(
                request, ext, "", str(uuid.uuid4()), RequestStatus.FAILED, reason
            )

    async def take(
        self,
        request: LlmRequest,
        targets: list[str],
        payload: LlmRequestBody,
        opened: Opened | None,
    ) -> dict[str, str]:
        """Answer ``targets`` of a request another node holds (``request.part``);
        the targets that cannot take it here, with why."""
        failed = {t: f"Extension {t} is not connected." for t in targets if not self.router.here(t)}
        local = [t for t in targets if t not in failed]
        if local:
            request.status = RequestStatus.PROCESSING
            request.targets = dict.fromkeys(local, TargetState.PENDING)
            self.tracker.add(request)
            if opened is not None:
                await opened(request, local)
            for target in local:
                await self.queues.admit(request, target, payload.copy())
        return failed

    def ended(
        self,
        request_id: str,
        states: dict[str, str],
        answers: dict[str, str],
        reason: str | None = None,
    ) -> None:
        """Targets another node answered have ended: once every target has,
        the request's final status is said from here."""
        request = self.tracker.get(request_id)
        if request is None:
            return
        request.answers.update(answers)
        final = None
        for ext, state in states.items():
            final = self.tracker.target_done(request, ext, TargetState(state)) or final
        if final is not None:
            detail: StatusDetail = {}
            if final is RequestStatus.FAILED and reason:
                detail["message"] = reason
            self.queues.responder.notify(request, final.value, **detail)

    async def cancel(self, request: LlmRequest) -> list[str]:
        """Cancel the parts of ``request`` on other nodes; their targets."""
        if self.cancel_parts is None:
            return []
        away = await self.cancel_parts(request)
        for ext in away:
            self.tracker.target_done(request, ext, TargetState.CANCELLED)
        return away
