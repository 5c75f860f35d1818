"""The Socket.IO server: python-socketio configured for this protocol.

A few private hooks of ``AsyncServer`` are overridden (the dependency is
pinned to an exact version for that reason; every private name used is
listed in ``realtime/internals.py``):

* ``_handle_event``: events go to our namespace dispatcher, which validates,
  answers every ack exactly once and runs handlers of one connection in
  arrival order (``async_handlers=False``). Handlers that must wait on
  another client (forwarded function calls) mark themselves *detached* and
  run in a task, so they never hold up the connection's other events.
* ``_handle_connect``: runs the namespace's post-connect step after the
  CONNECT packet is out, so anything sent then reaches a connected client.
* ``_handle_eio_connect``: new Engine.IO sockets become ``LeanSocket``s.
* ``_handle_eio_message``: oversized, undecodable and binary packets get a
  clear error (stream events take the cheap path of
  ``realtime/fast_stream.py`` before they get here).
* ``_handle_eio_connect``/``_handle_eio_disconnect``: admission
  (``realtime/admission.py``) and the outbound budget of each socket.

Its client manager is ``realtime/manager.py``'s (rooms as plain dicts).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import orjson
import socketio
from socketio import packet

from newage.errors import ErrorCode, NewAgeError, bad_request
from newage.logs import log
from newage.protocol.names import Ev
from newage.protocol.surrogates import lenient_loads
from newage.realtime import internals
from newage.realtime.admission import Admission
from newage.realtime.engine import LeanQueue, LeanSocket, OutboundBudget, lean_translate_request
from newage.realtime.manager import LeanManager
from newage.settings import Settings

if TYPE_CHECKING:
    from newage.realtime.base import BaseNamespace


class OrjsonJSON:
    """The ``json=`` hook: orjson returns bytes, Socket.IO wants text."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            # a lone UTF-16 half (orjson refuses it); the standard library
            # escapes it as JSON allows, as JavaScript would
            return json.dumps(obj, separators=(",", ":"))

    @staticmethod
    def loads(text: str | bytes, *args: Any, **kwargs: Any) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            # orjson refuses lone UTF-16 halves, which JavaScript sends
            # when it slices an emoji in two
            return lenient_loads(text)


NO_BINARY = "Binary attachments are not supported: send JSON."
UNDECODABLE = "Undecodable packet."
# type, attachment count, namespace and ack id of a packet that failed to decode
_HEAD = re.compile(r"(.)(?:\d{1,10}-)?(/[^,?]*)?(?:\?[^,]*)?,?(\d{1,15})?")


def salvage_head(data: str) -> tuple[str, int | None]:
    """Namespace and ack id of an undecodable packet, where they can be read."""
    match = _HEAD.match(data)
    if match is None:
        return "/", None
    kind, namespace, ack_id = match.groups()
    wants_ack = kind in (str(packet.EVENT), str(packet.BINARY_EVENT))
    return namespace or "/", int(ack_id) if ack_id and wants_ack else None


def hard_payload_limit(settings: Settings) -> int:
    # Above the soft limit an event is answered with a clear error; above
    # this hard limit the transport drops the connection (as Socket.IO does).
    return settings.max_payload_bytes * 4


class NewAgeServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(
        self, live: Callable[[], Settings], origins: Callable[[str | None, Any], bool]
    ) -> None:
        settings = live()
        self.live = live
        # Refused origins never get here (http/origins.py); the callable only
        # keeps CORS headers off responses to origins that are not allowed.
        super().__init__(
            async_mode="asgi",
            client_manager=LeanManager(),
            json=OrjsonJSON,
            async_handlers=False,
            cors_allowed_origins=origins,
            cors_credentials=True,
            max_http_buffer_size=hard_payload_limit(settings),
            ping_interval=settings.ping_interval / 1000,
            ping_timeout=settings.ping_timeout / 1000,
            transports=["polling", "websocket"],
            logger=False,
            engineio_logger=False,
        )
        self.soft_limit = settings.max_payload_bytes
        internals.use_translate_request(self.eio, lean_translate_request)
        # Seven stream events arrive per token: LeanSocket hands well-formed
        # ones to the /llm namespace's cheap path, which returns False to
        # send an event down the full path instead.
        self.eio.newage_fast_frame = None
        self._closing: set[asyncio.Task[None]] = set()
        self.admission = Admission(live)
        self._deadlines: asyncio.TimerHandle | None = None
        self._attachments: dict[str, int] = {}  # eio sid -> binary frames to skip

    def ns(self, namespace: str) -> BaseNamespace | None:
        handler = self.namespace_handlers.get(namespace)
        return handler  # type: ignore[no-any-return]

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> dict[str, str] | None:
        address = environ.get("REMOTE_ADDR", "")
        loop = asyncio.get_running_loop()
        decision = self.admission.admit(eio_sid, address, loop.time())
        if decision.refusal is not None:
            log.info("refused a connection from %s: %s", address, decision.refusal)
            # python-engineio answers 401 with this as the JSON body
            return {"status": "error", "message": decision.refusal}
        for victim in decision.evict:
            self._later(self._drop(victim, "made room for a new connection, none connected"))
        await super()._handle_eio_connect(eio_sid, environ)
        settings = self.live()
        if self._deadlines is None:
            self._arm_deadlines()
        sock = internals.engine_socket(self, eio_sid)
        if sock is not None:
            budget = OutboundBudget(
                settings.outbound_max_bytes,
                settings.outbound_max_age / 1000,
                lambda why: self._later(self._drop(eio_sid, f"stopped reading ({why})")),
            )
            # see realtime/engine.py
            internals.adopt_socket(sock, LeanSocket, lambda q: LeanQueue.taking_over(q, budget))
        return None

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self.admission.gone(eio_sid)
        self._attachments.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _arm_deadlines(self) -> None:
        when = self.admission.next_deadline()
        if when is not None:
            loop = asyncio.get_running_loop()
            self._deadlines = loop.call_at(when, self._deadlines_due)

    def _deadlines_due(self) -> None:
        self._deadlines = None
        for eio_sid in self.admission.expired(asyncio.get_running_loop().time()):
            self._later(self._drop(eio_sid, "no namespace connected in time"))
        self._arm_deadlines()

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _drop(self, eio_sid: str, why: str) -> None:
        """Close a session now, releasing at once what it held: the TCP
        connection (and its kernel and write buffers) first, then the packets
        waiting for it, then the Engine.IO session."""
        self.admission.gone(eio_sid)
        sock = internals.engine_socket(self, eio_sid)
        if sock is None:
            return
        environ = internals.environ_of(self, eio_sid)
        log.warning("closed a connection from %s: %s", environ.get("REMOTE_ADDR", "?"), why)
        abort = getattr(sock, "newage_abort", None)
        if abort is not None:
            abort()
        queue = sock.queue
        if isinstance(queue, LeanQueue):
            queue.discard()
        await sock.close(wait=False, abort=True, reason=self.eio.reason.TRANSPORT_ERROR)
        queue.put_nowait(None)  # a writer or a poll still waiting exits
        internals.forget_engine_socket(self, eio_sid)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """python-socketio's dispatch, with clear errors for what it would
        drop silently or fail on: oversized, undecodable and binary packets."""
        if not isinstance(data, str):
            # a binary frame: the attachment of a binary packet, refused below
            if self._attachments.get(eio_sid, 0) > 0:
                self._attachments[eio_sid] -= 1
            else:
                await self._reply_error(eio_sid, "/", None, bad_request(NO_BINARY))
            return
        if len(data) > self.soft_limit:
            await self._refuse_large(eio_sid, data)
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:
            namespace, ack_id = salvage_head(data)
            log.info("undecodable packet on %s: %s", namespace, exc)
            await self._reply_error(eio_sid, namespace, ack_id, bad_request(UNDECODABLE))
            return
        kind = pkt.packet_type
        if kind == packet.EVENT:
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
        elif kind == packet.ACK:
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind in (packet.BINARY_EVENT, packet.BINARY_ACK):
            # JSON is the protocol: the attachments that follow are skipped
            self._attachments[eio_sid] = pkt.attachment_count
            ack_id = pkt.id if kind == packet.BINARY_EVENT else None
            await self._reply_error(eio_sid, pkt.namespace or "/", ack_id, bad_request(NO_BINARY))
        else:
            await self._reply_error(eio_sid, pkt.namespace or "/", None, bad_request(UNDECODABLE))

    async def _refuse_large(self, eio_sid: str, data: str) -> None:
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception:
            return
        if pkt.packet_type != packet.EVENT:
            return
        namespace = pkt.namespace or "/"
        error = NewAgeError(
            ErrorCode.TOO_LARGE,
            f"Payload too large ({len(data)} bytes; the limit is {self.soft_limit}).",
        )
        log.warning("refused a %d-byte event on %s", len(data), namespace)
        await self._reply_error(eio_sid, namespace, pkt.id, error)

    async def _reply_error(
        self, eio_sid: str, namespace: str, ack_id: int | None, error: NewAgeError
    ) -> None:
        """The error as the ack when there is an ack id, else as an ``ERROR``
        event; only to a namespace this connection has open."""
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return
        if ack_id is not None:
            await self.send_ack(eio_sid, namespace, ack_id, error.to_ack())
        else:
            await self.emit(Ev.ERROR, error.to_ack(), to=sid, namespace=namespace)

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return
        handler = self.ns(namespace)
        # emit(undefined, ...) in a JS client arrives with a null name: ignore it
        if handler is None or not data or not isinstance(data[0], str):
            return
        await handler.receive(sid, eio_sid, id, data[0], data[1:])

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            # python-socketio answers CONNECT_ERROR, which makes clients drop
            # the namespace they still have open: the working socket stays
            error = bad_request(f"Already connected to {namespace} on this connection.")
            await self._reply_error(eio_sid, namespace, None, error)
            return
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is not None and self.manager.is_connected(sid, namespace):
            self.admission.authenticated(eio_sid)
            handler = self.ns(namespace)
            if handler is not None:
                await handler.after_connect(sid)

    async def send_ack(self, eio_sid: str, namespace: str, ack_id: int, result: Any) -> None:
        await self._send_packet(
            eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=ack_id, data=[result])
        )
