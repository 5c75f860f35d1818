"""Namespace plumbing shared by every namespace module.

A handler is a method decorated with :func:`on`. The dispatcher looks up the
route (aliases included), refuses events the connection's mode does not
allow, validates the payload with the route's pydantic model, calls the
handler and turns its result, a :class:`NewAgeError` or a crash into exactly
one ack. Without an ack, an error is sent as an ``ERROR`` event instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import socketio
from pydantic import BaseModel, ValidationError

from newage.domain.identity.auth import AuthResult
from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import ConnMode
from newage.errors import ErrorCode, NewAgeError, bad_request
from newage.logs import log
from newage.protocol.acks import OK, Ok
from newage.protocol.models import check_shape, validation_message
from newage.protocol.names import Ev
from newage.protocol.outbound import ErrorEvent

if TYPE_CHECKING:
    from newage.services import Services

Handler = Callable[[Any, SocketRef, Any], Awaitable[Any]]
ErrorShape = Callable[[NewAgeError, Any], Mapping[str, Any]]


def _ack_error(error: NewAgeError, _data: Any) -> Mapping[str, Any]:
    return error.to_ack()


@dataclass(frozen=True, slots=True)
class Route:
    event: str
    handler: Handler
    model: type[BaseModel] | None
    modes: frozenset[ConnMode]
    # True, or a predicate on the event's arguments: run in a task instead of
    # in arrival order (only for events that wait on another client)
    detached: bool | Callable[[list[Any]], bool]
    error_shape: ErrorShape
    # the message of a payload the model refuses, where the wire fixes one
    invalid: str | None = None


def on(
    event: str,
    *aliases: str,
    model: type[BaseModel] | None = None,
    modes: tuple[ConnMode, ...] = (ConnMode.FULL,),
    detached: bool | Callable[[list[Any]], bool] = False,
    error_shape: ErrorShape = _ack_error,
    invalid: str | None = None,
) -> Callable[[Handler], Handler]:
    def mark(fn: Handler) -> Handler:
        fn.__newage_routes__ = [  # type: ignore[attr-defined]
            Route(name, fn, model, frozenset(modes), detached, error_shape, invalid)
            for name in (event, *aliases)
        ]
        return fn

    return mark


class BaseNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    routes: ClassVar[dict[str, Route]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        routes: dict[str, Route] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for route in getattr(attr, "__newage_routes__", ()):
                    routes[route.event] = route
        cls.routes = routes

    def __init__(self, namespace: str, services: Services) -> None:
        super().__init__(namespace)
        self.services = services
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted: dict[str, tuple[AuthResult, bool]] = {}
        # labelled metric children, looked up once (a labels() call costs
        # more than the increment itself)
        metrics = services.metrics
        self.m_events_in = metrics.events_in.labels(namespace)
        self.m_handler_seconds = metrics.handler_seconds.labels(namespace)
        self.m_connections = metrics.connections.labels(namespace)

    # ------------------------------------------------------------------ connect
    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        scope = environ.get("asgi.scope") or {}
        client = scope.get("client")
        # engineio's ASGI driver hard-codes REMOTE_ADDR; the real peer (after
        # uvicorn's proxy-header handling) is in the scope.
        peer = client[0] if client else ""
        try:
            result = await self.services.auth.authenticate(self.namespace, auth, peer)
            await self.authorize(result)
        except NewAgeError as exc:
            message, data = exc.to_connect_refusal()
            self.services.audit.refused(exc, _who(auth), peer, self.namespace)
            raise socketio.exceptions.ConnectionRefusedError(message, data) from None
        ref = SocketRef(sid, self.namespace, result.principal, result.mode)
        p = result.principal
        try:
            started = await self.services.sessions.socket_added(ref)
        except NewAgeError as exc:
            await self.services.sessions.socket_removed(sid)
            message, data = exc.to_connect_refusal()
            log.info("refused %s on %s: %s", p.identity, self.namespace, message)
            raise socketio.exceptions.ConnectionRefusedError(message, data) from None
        except Exception:
            log.exception("could not register %s on %s", p.identity, self.namespace)
            await self.services.sessions.socket_removed(sid)
            message = "Internal server error."
            raise socketio.exceptions.ConnectionRefusedError(
                message, {"status": "error", "message": message}
            ) from None
        self.m_connections.inc()
        log.info(
            "%s (%s, %s) connected to %s [%s]",
            p.identity,
            p.client_id,
            p.kind.value,
            self.namespace,
            result.mode.value,
        )
        self._accepted[sid] = (result, started)

    async def authorize(self, result: AuthResult) -> None:
        """Namespace-specific gate after authentication (override)."""

    async def after_connect(self, sid: str) -> None:
        accepted = self._accepted.pop(sid, None)
        ref = self.services.presence.get(sid)
        if accepted is None or ref is None:
            return
        result, started = accepted
        try:
            await self.services.sessions.socket_ready(ref, started)
            await self.accepted(ref, result)
        except Exception:
            log.exception("post-connect step failed on %s", self.namespace)

    async def accepted(self, ref: SocketRef, result: AuthResult) -> None:
        """Runs once the CONNECT packet was sent (override)."""

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._accepted.pop(sid, None)
        ref = self.services.presence.get(sid)
        if ref is None:
            return
        self.m_connections.dec()
        try:
            await self.closed(ref)
        except Exception:
            log.exception("disconnect handling failed on %s", self.namespace)
        log.info("%s left %s (%s)", ref.principal.identity, self.namespace, reason)

    async def closed(self, ref: SocketRef) -> None:
        """Per-namespace cleanup (override and call super last)."""
        await self.services.sessions.socket_removed(ref.sid)

    # ------------------------------------------------------------------ events
    async def receive(
        self, sid: str, eio_sid: str, ack_id: int | None, event: str, args: list[Any]
    ) -> None:
        self.m_events_in.inc()
        route = self.routes.get(event)
        if (
            route is not None
            and route.detached
            and (route.detached is True or route.detached(args))
        ):
            task = asyncio.create_task(self._answer(sid, eio_sid, ack_id, event, route, args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            await self._answer(sid, eio_sid, ack_id, event, route, args)

    async def _answer(
        self,
        sid: str,
        eio_sid: str,
        ack_id: int | None,
        event: str,
        route: Route | None,
        args: list[Any],
    ) -> None:
        result = await self.dispatch(sid, event, route, args, ack_id is not None)
        if ack_id is not None:
            await self.server.send_ack(eio_sid, self.namespace, ack_id, result)

    async def dispatch(
        self, sid: str, event: str, route: Route | None, args: list[Any], acked: bool
    ) -> Any:
        data = args[0] if args else None
        ref = self.services.presence.get(sid)
        shape: ErrorShape = route.error_shape if route else _ack_error
        started = time.perf_counter()
        try:
            if ref is None:
                raise NewAgeError(ErrorCode.UNAUTHENTICATED, "Not connected.")
            if route is None:
                raise bad_request(f'Unknown event "{event[:64]}" on {self.namespace}.')
            if ref.mode not in route.modes:
                raise NewAgeError(ErrorCode.UNAUTHENTICATED, "Key required.")
            check_shape(data, self.services.live.current.max_payload_depth)
            payload: Any = data
            if route.model is not None:
                try:
                    payload = route.model.model_validate({} if data is None else data)
                except ValidationError as exc:
                    raise bad_request(route.invalid or validation_message(event, exc)) from None
            with self.services.audit.acting(ref.principal.identity):
                result = await route.handler(self, ref, payload)
            if result is None:
                result = {**OK}
        except NewAgeError as exc:
            failure = exc
        except Exception:
            log.exception("handler for %s on %s failed", event, self.namespace)
            failure = NewAgeError(ErrorCode.INTERNAL, "Internal server error.")
        else:
            return result
        finally:
            self.m_handler_seconds.observe(time.perf_counter() - started)
        if not acked:
            notice: ErrorEvent = {**failure.to_ack(), "event": event}
            await self.emit(Ev.ERROR, notice, to=sid)
        return shape(failure, data)

    # ------------------------------------------------------------------ common events
    @on(Ev.CLIENT_DISCONNECTED, modes=tuple(ConnMode))
    async def on_client_disconnected(self, ref: SocketRef, data: Any) -> Ok:
        # A courtesy notice; the real disconnect follows. Identity-wide
        # cleanup from it would hurt the client's other instances.
        log.info("%s says it is leaving %s", ref.principal.identity, self.namespace)
        return {**OK}


def _who(auth: Any) -> str:
    if isinstance(auth, dict) and isinstance(auth.get("clientId"), str):
        return repr(auth["clientId"][:64])
    return "a client without clientId"
