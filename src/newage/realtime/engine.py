"""A leaner Engine.IO socket for the websocket transport.

python-engineio's socket waits for each inbound websocket message through a
new task wrapped in ``asyncio.wait_for`` (and for each outbound batch through
``wait_for`` too): about 7 µs per message, the largest single cost of the
seven inbound events of every streamed token. This subclass keeps the
library's behaviour (upgrade handshake, writer task, close) and changes only
how it waits:

* inbound: a plain ``await`` of the next message. A dead peer is still
  noticed: uvicorn pings every websocket (``ws_ping_interval``) and closes it
  when the pong does not come, and Engine.IO's own ping timeout closes the
  socket at the protocol level.
* outbound: ``asyncio.timeout`` instead of ``wait_for`` (no task per batch).
* pings: a timer handle instead of a task asleep for the ping interval.
* the outbound queue: :class:`LeanQueue` instead of ``asyncio.Queue``.

On uvicornWs ``newage`` (the default) the handler below hands the
connection to ``realtime/direct_ws.py`` once the handshake and the upgrade
are done: no reader loop over ASGI messages and no writer task.

``lean_translate_request`` replaces the driver's environ builder, which
defined a class per request (kept alive per connection).

Sockets are switched to this class as they connect (``NewAgeServer``), so
the rest of python-engineio (pinned to an exact version) is untouched. The
upgrade path below is the library's but for one fix: a websocket that closes
before the probe no longer leaves the session stuck "upgrading". The JS-client
tests exercise it over polling-then-upgrade and websocket-only,
``tests/test_upgrades.py`` its failure branches. Every private name this
relies on is listed in ``realtime/internals.py`` and checked against the
installed version.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from engineio import async_socket, exceptions, packet

from newage.realtime import direct_ws

Receive = Callable[[], Awaitable[dict[str, Any]]]
# an Engine.IO MESSAGE ("4") carrying a Socket.IO EVENT ("2") on /llm
# without ack id; the event's JSON array follows
STREAM_FRAME_HEAD = "42/llm,"
FAST_FRAME = STREAM_FRAME_HEAD + '["CLIENT_STREAM_'


class _Payload:
    """The request body as ``environ['wsgi.input']``.

    python-engineio's ASGI driver defines this class inside every request,
    so each connection kept a class object alive (about 2.4 KB) through the
    environ that python-socketio stores for it.
    """

    __slots__ = ("event", "payload", "receive")

    def __init__(self, event: dict[str, Any], receive: Receive) -> None:
        self.event = event
        self.payload: bytes | None = None
        self.receive = receive

    async def read(self, length: int | None = None) -> bytes:
        if self.payload is None and self.event["type"] == "http.request":
            self.payload = self.event.get("body") or b""
            while self.event.get("more_body"):
                self.event = await self.receive()
                if self.event["type"] == "http.request" and (
                    length is None or len(self.payload) < length
                ):
                    self.payload += self.event.get("body") or b""
        data = self.payload or b""
        if length is None:
            self.payload = b""
            return data
        self.payload = data[length:]
        return data[:length]


async def lean_translate_request(scope: Any, receive: Receive, send: Any) -> dict[str, Any]:
    """python-engineio's ``translate_request`` for ASGI, with the payload class
    above and the real peer address in ``REMOTE_ADDR``."""
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    raw_uri = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        try:
            query_string = scope["query_string"].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raw_uri += "?" + query_string
    client = scope.get("client")
    environ: dict[str, Any] = {
        "wsgi.input": _Payload(event, receive),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "asgi",
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": scope["path"],
        "QUERY_STRING": query_string,
        "RAW_URI": raw_uri,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "0",
        "SERVER_NAME": "asgi",
        "SERVER_PORT": "0",
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue  # skip a header that cannot be decoded
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        if key in environ:
            value = f"{environ[key]},{value}"
        environ[key] = value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ


class OutboundBudget:
    """How much one connection may leave unsent, and what happens past it."""

    __slots__ = ("exceeded", "max_age", "max_bytes", "tripped")

    def __init__(self, max_bytes: int, max_age: float, exceeded: Callable[[str], None]) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.exceeded = exceeded
        self.tripped = False

    def trip(self, why: str) -> None:
        if not self.tripped:
            self.tripped = True
            self.exceeded(why)


def _size(item: Any) -> int:
    data = getattr(item, "data", None)
    if isinstance(data, (str, bytes)):
        return len(data) + 64
    return 64


class LeanQueue:
    """The outbound packet queue of one socket, for its single consumer.

    Same contract as the parts of ``asyncio.Queue`` python-engineio uses
    (``put``/``put_nowait``, ``get``/``get_nowait``, ``task_done``, ``join``)
    at a third of the memory: no event, no getter/putter deques.

    With a :class:`OutboundBudget` it also keeps count of the bytes waiting
    and of when the oldest of them was queued: a client that stops reading
    makes both grow, and the budget trips once either is past its limit.
    """

    __slots__ = (
        "_bytes",
        "_head",
        "_items",
        "_joined",
        "_times",
        "_unfinished",
        "_waiter",
        "budget",
        "notify",
    )

    def __init__(self) -> None:
        # lists read from ``_head`` on, not deques: an idle socket's empty
        # list costs 56 bytes, a deque over 600 (thousands of idle sockets)
        self._items: list[Any] = []
        self._times: list[float] = []
        self._head = 0
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._joined: asyncio.Future[None] | None = None
        self._unfinished = 0
        self.budget: OutboundBudget | None = None
        # instead of a consumer task: called on every put (direct_ws.Lane)
        self.notify: Callable[[], None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._unfinished += 1
        budget = self.budget
        if budget is not None:
            now = time.monotonic()
            self._times.append(now)
            self._bytes += _size(item)
            if self._bytes > budget.max_bytes:
                budget.trip(f"{self._bytes} bytes waiting")
            else:
                age = now - self._times[self._head]
                if age > budget.max_age:
                    budget.trip(f"a packet waiting for {age:.1f} s")
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif self.notify is not None:
            self.notify()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def _pop(self) -> Any:
        items = self._items
        head = self._head
        item = items[head]
        head += 1
        if head == len(items):
            items.clear()
            self._times.clear()
            head = 0
        elif head >= 64 and head * 2 >= len(items):
            del items[:head]  # what was taken, once it is half the list
            del self._times[:head]
            head = 0
        self._head = head
        if self.budget is not None:
            self._bytes -= _size(item)
        return item

    def get_nowait(self) -> Any:
        if self._head >= len(self._items):
            raise asyncio.QueueEmpty
        return self._pop()

    async def get(self) -> Any:
        while self._head >= len(self._items):
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._pop()

    def discard(self) -> None:
        """Drop everything waiting (the connection is being closed)."""
        self._items.clear()
        self._times.clear()
        self._head = 0
        self._bytes = 0

    def task_done(self) -> None:
        self._unfinished -= 1
        joined = self._joined
        if self._unfinished <= 0 and joined is not None and not joined.done():
            joined.set_result(None)

    async def join(self) -> None:
        if self._unfinished > 0:
            self._joined = asyncio.get_running_loop().create_future()
            await self._joined

    def empty(self) -> bool:
        return self._head >= len(self._items)

    def qsize(self) -> int:
        return len(self._items) - self._head

    @classmethod
    def taking_over(cls, queue: Any, budget: OutboundBudget | None = None) -> LeanQueue:
        lean = cls()
        lean.budget = budget
        while True:
            try:
                lean.put_nowait(queue.get_nowait())
            except asyncio.QueueEmpty:
                return lean


def transport_aborter(ws: Any) -> Callable[[], None] | None:
    """A way to drop the TCP connection under a websocket at once.

    A close handshake (and ``transport.close``) first waits for the write
    buffer to drain, which a peer that stopped reading never lets happen;
    even a plain close of the descriptor leaves the kernel sending what is
    queued behind a zero window. A zero linger turns the close into a reset
    that frees both buffers now. uvicorn's ASGI ``send`` is a method of its
    protocol object, which holds the transport.
    """
    protocol = getattr(getattr(ws, "asgi_send", None), "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is None or not callable(getattr(transport, "abort", None)):
        return None

    def abort() -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    return abort


class LeanSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    newage_abort: Callable[[], None] | None = None
    _ping_timer: asyncio.TimerHandle | None = None

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        await super().close(wait=wait, abort=abort, reason=reason)
        if self.closed and self._ping_timer is not None:
            # The timer holds the socket (and through it the connection's
            # queue, environ and websocket) for up to a ping interval after
            # the close: under reconnects, thousands of dead connections
            # aged into the collector's oldest generation.
            self._ping_timer.cancel()
            self._ping_timer = None
        # A close may queue nothing (python-engineio's ping timeout drops its
        # own CLOSE packet: send() checks the timeout again), and on the
        # direct lane no writer would notice: wake the lane, which ends the
        # websocket of a closed socket.
        notify = getattr(self.queue, "notify", None)
        if self.closed and notify is not None:
            notify()

    def schedule_ping(self) -> None:
        # The library keeps a task asleep for the whole ping interval, per
        # socket; a timer handle costs a fraction of that memory.
        if self.last_ping:  # type: ignore[has-type]
            self.last_ping = None
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        self._ping_timer = None
        if not self.closing and not self.closed:
            self.last_ping = time.time()  # type: ignore[assignment]
            self.queue.put_nowait(packet.Packet(packet.PING))

    async def poll(self) -> list[Any]:
        """Wait for packets to send to the client."""
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                packets = [await self.queue.get()]
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        while True:
            try:
                pkt = self.queue.get_nowait()
                self.queue.task_done()
                if pkt is None:
                    self.queue.put_nowait(None)
                    break
                packets.append(pkt)
            except asyncio.QueueEmpty:
                break
        return packets

    async def take(self, p: str | bytes, fast: Any, head: str) -> bool:
        """One inbound websocket packet; False when the socket is closed
        (stop reading). Shared by the reader below and the direct lane."""
        # stream events of an extension skip Engine.IO's packet objects and
        # the Socket.IO dispatch (realtime/fast_stream.py)
        if fast is not None and type(p) is str and p.startswith(head):
            try:
                if await fast(self.sid, p):
                    return True
            except Exception:
                self.server.logger.exception("fast path failed")
        try:
            await self.receive(packet.Packet(encoded_packet=p))
        except exceptions.UnknownPacketError:
            pass
        except exceptions.SocketIsClosedError:
            self.server.logger.info("Receive error -- socket is closed")
            return False
        except Exception:
            # log and go on: one bad packet must not drop the connection
            self.server.logger.exception("Unknown receive error")
        return True

    async def _websocket_handler(self, ws: Any) -> None:
        """Engine.IO handler for websocket transport."""

        async def websocket_wait() -> Any:
            data = await ws.wait()
            if data and len(data) > self.server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data

        if self.connected:  # type: ignore[has-type]
            # the socket was already connected, so this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade
            try:
                pkt = await websocket_wait()
            except OSError:
                # (the library returns with ``upgrading`` still set, after
                # which every poll answers NOOP: the session is wedged)
                self.upgrading = False
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.PING or decoded_pkt.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # end poll
            try:
                pkt = await websocket_wait()
            except OSError:
                self.upgrading = False
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.UPGRADE:
                self.upgraded = False
                self.server.logger.info(
                    "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                    self.sid,
                    pkt,
                )
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        self.newage_abort = transport_aborter(ws)
        lane = direct_ws.lane_of(ws)
        if lane is not None:  # uvicornWs newage: no ASGI hop from here on
            await direct_ws.serve(self, ws, lane, FAST_FRAME)
            return

        async def writer() -> None:
            while True:
                try:
                    packets = await self.poll()
                except exceptions.QueueEmpty:
                    break
                if not packets:
                    break  # empty packet list returned -> connection closed
                try:
                    for pkt in packets:
                        await ws.send(pkt.encode())
                except Exception:
                    break
            await ws.close()

        writer_task = asyncio.ensure_future(writer())
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)

        fast = getattr(self.server, "newage_fast_frame", None)
        while True:
            try:
                p = await websocket_wait()
            except Exception:
                break
            if p is None:
                break  # connection closed by client
            if not await self.take(p, fast, FAST_FRAME):
                break

        await self.queue.put(None)  # unlock the writer task so it can exit
        await writer_task
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
