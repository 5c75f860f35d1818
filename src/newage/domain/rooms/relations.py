"""Connection policies and assignments, persisted and pushed to clients.

Wraps :class:`~newage.domain.rooms.policies.Assignments` (pure) with the store
(policy and manual assignments survive restarts) and the notifications:
``AVAILABLE_EXTENSIONS {extensions}`` to each client room whose list changed
(an empty list included) and ``ASSIGNMENTS_UPDATED`` to the monitors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from newage.domain.identity.presence import Presence
from newage.domain.identity.principal import Principal, require_admin
from newage.domain.ops import audit
from newage.domain.ports.delivery import Outbox, identity_addr, room_addr
from newage.domain.ports.store import Store
from newage.domain.rooms.policies import Assignments
from newage.errors import bad_request, forbidden, not_found
from newage.logs import log
from newage.protocol.names import MONITOR_ROOM, ConnectionPolicy, Ev, Namespace
from newage.protocol.outbound import AssignmentsView, AvailableExtensions

POLICY_KEY = "connectionPolicy"
VIEW_DELAY = 0.05  # seconds


class RelationService:
    def __init__(self, store: Store, outbox: Outbox, presence: Presence) -> None:
        self.store = store
        self.outbox = outbox
        self.presence = presence
        self.model = Assignments()
        self._view_update: asyncio.TimerHandle | None = None
        # several processes: another one reloads the policy and assignments
        self.on_changed: Callable[[], None] = lambda: None
        self._default_policy = ConnectionPolicy.FREE

    async def load(self, default_policy: ConnectionPolicy) -> None:
        self._default_policy = default_policy
        self.model.policy = await self._stored_policy()
        self.model.manual = await self.store.load_manual_assignments()

    async def reload(self) -> None:
        """Another process changed the policy or the manual assignments."""
        policy = await self._stored_policy()
        manual = await self.store.load_manual_assignments()
        if manual != self.model.manual:
            self.model.manual = manual
            await self._publish(self.model.recompute())
        if policy is not self.model.policy:
            await self._publish(self.model.set_policy(policy))

    async def _stored_policy(self) -> ConnectionPolicy:
        stored = await self.store.get_meta(POLICY_KEY)
        default = self._default_policy
        try:
            return ConnectionPolicy(stored) if stored else default
        except ValueError:
            log.warning("stored connection policy %r is unknown; using %s", stored, default)
            return default

    # ------------------------------------------------------------------ presence inputs
    async def extension_online(self, identity: str) -> None:
        await self._publish(self.model.add_extension(identity))

    async def extension_offline(self, identity: str) -> None:
        await self._publish(self.model.remove_extension(identity))

    async def client_online(self, identity: str) -> None:
        await self._publish(self.model.add_client_room(identity))

    async def client_offline(self, identity: str) -> None:
        await self._publish(self.model.remove_client_room(identity))

    async def greet(self, sid: str, principal: Principal) -> None:
        """A new ``/rooms`` socket learns the current state: its client
        room's extensions (when it already is one; otherwise the session
        start pushes them) or, for admins, the whole view."""
        if principal.is_admin:
            self.outbox.emit(Namespace.ROOMS, Ev.ASSIGNMENTS_UPDATED, self.view(), [sid])
        elif principal.identity in self.model.client_rooms:
            exts: AvailableExtensions = {"extensions": self.model.for_room(principal.identity)}
            self.outbox.emit(Namespace.ROOMS, Ev.AVAILABLE_EXTENSIONS, exts, [sid])

    # ------------------------------------------------------------------ admin
    async def set_policy(
        self, value: Any, actor: Principal, network_safe: bool
    ) -> ConnectionPolicy:
        require_admin(actor, network_safe)
        try:
            policy = ConnectionPolicy(value)
        except ValueError:
            raise bad_request("Invalid connection policy") from None
        await self.store.set_meta(POLICY_KEY, policy.value)
        self.on_changed()
        await self._publish(self.model.set_policy(policy))
        audit.record("policy.set", policy.value)
        return policy

    async def assign(
        self, client_room: str, extensions: list[str], actor: Principal, network_safe: bool
    ) -> list[str]:
        require_admin(actor, network_safe)
        if self.model.policy is not ConnectionPolicy.MANUAL:
            raise bad_request("Manual assignment is only allowed in Manual mode")
        if client_room not in self.model.client_rooms:
            raise not_found("Client room not found")
        for ext in extensions:
            if ext not in self.model.extensions:
                raise not_found(f"Extension not found: {ext}")
        unique = list(dict.fromkeys(extensions))
        await self.store.set_manual_assignment(client_room, unique)
        self.on_changed()
        await self._publish(self.model.set_manual(client_room, unique))
        audit.record("policy.assign", client_room, extensions=unique)
        return unique

    def forget_client_room(self, room: str) -> None:
        """A deleted room's manual assignment goes with it (the store's too)."""
        self.model.manual.pop(room, None)

    # ------------------------------------------------------------------ queries
    def for_room(self, room: str) -> list[str]:
        return self.model.for_room(room)

    def assignments_for(self, principal: Principal, room: str | None) -> tuple[str, list[str]]:
        """``GET_ASSIGNMENTS_FOR_ROOM``: the room asked about (the caller's own
        client room by default) and its extensions."""
        name = room or principal.identity
        # the documented client example asks with its clientId
        if name == principal.client_id and name not in self.model.client_rooms:
            name = principal.identity
        return name, self.model.for_room(name)

    def for_requester(self, room: str, requester: Principal) -> list[str]:
        """Extensions a request into ``room`` by ``requester`` may use:
        every connected one for admins and under Free/Broadcast, otherwise
        those assigned to the room or to the requester's own client room."""
        if requester.is_admin or self.model.policy in (
            ConnectionPolicy.FREE,
            ConnectionPolicy.BROADCAST,
        ):
            return list(self.model.extensions)
        allowed = self.model.for_room(room) + self.model.for_room(requester.identity)
        return list(dict.fromkeys(allowed))

    def visible_to(self, principal: Principal) -> list[str]:
        """Extensions a principal is told about: all for admins and
        extensions, the assigned ones for plain clients."""
        if principal.is_admin or principal.is_extension:
            return list(self.model.extensions)
        return self.model.for_room(principal.identity)

    def view(self) -> AssignmentsView:
        return {
            "policy": self.model.policy.value,
            "assignments": self.model.snapshot(),
            "manualAssignments": {k: list(v) for k, v in self.model.manual.items()},
            "extensions": list(self.model.extensions),
            "clientRooms": list(self.model.client_rooms),
        }

    async def _publish(self, changed: dict[str, list[str]]) -> None:
        for room, extensions in changed.items():
            notice: AvailableExtensions = {"extensions": extensions}
            self.outbox.emit(
                Namespace.ROOMS, Ev.AVAILABLE_EXTENSIONS, notice, [identity_addr(room)]
            )
        # the admins' full view is sent once per burst of changes: it lists
        # every client room, so one per connect would be quadratic
        if self._view_update is None:
            loop = asyncio.get_running_loop()
            self._view_update = loop.call_later(VIEW_DELAY, self._send_view)

    def _send_view(self) -> None:
        self._view_update = None
        if self.presence.per_namespace.get(Namespace.ROOMS):
            self.outbox.emit(
                Namespace.ROOMS, Ev.ASSIGNMENTS_UPDATED, self.view(), [room_addr(MONITOR_ROOM)]
            )


def require_monitor_or_extension(actor: Principal) -> None:
    if not (actor.is_admin or actor.is_extension):
        raise forbidden("Unauthorized")
