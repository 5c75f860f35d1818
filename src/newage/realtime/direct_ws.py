"""The Engine.IO websocket transport without the ASGI hop (``uvicornWs``
``newage``).

Under uvicorn every inbound websocket frame becomes an ASGI message dict,
goes through an ``asyncio.Queue`` and python-engineio's ``WebSocket.wait``
into the socket's reader task, and uvicorn pauses and resumes reading
around each one; every outbound packet goes back the same way, one
``transport.write`` each, from a writer task per socket. A streamed token is
seven small inbound frames, so that machinery was a large share of the
server's CPU per token (docs/performance.md, "Transport candidates").

:class:`DirectProtocol` is uvicorn's sans-I/O websockets protocol (the
handshake and control frames are websockets' ``ServerProtocol``; the lane's
data frames are parsed by aiohttp's compiled reader, ``frames_in.py``, from
the first frame boundary on) with one addition: once
the Engine.IO socket has the connection (after the HTTP handshake, which
still runs through the whole ASGI app: proxy headers, origin checks,
admission, the Engine.IO connect handler, the polling upgrade's probe), it
attaches a :class:`Lane`, and from then on:

* inbound: the text of every complete frame of one ``data_received`` goes to
  the lane, which handles stream frames (and pongs) right there, inside
  ``data_received``: a coroutine that finishes without waiting never sees a
  task. The first frame that has to wait, or any other packet, moves the
  rest of the batch, in order, to one task, until the lane is empty again.
* outbound: the socket's queue calls the lane on every put; one callback per
  loop turn frames everything queued with websockets and writes it with one
  ``transport.write`` (no writer task). While the transport is paused
  (``pause_writing``) packets stay in the queue, where the outbound budget
  counts them.

Pings, pongs, close frames, ``ws_max_size`` and the keepalive stay uvicorn's
code; control frames, binary and fragmented messages take uvicorn's handlers.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

from engineio import packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN

from newage.realtime.frames_in import COMPILED, at_frame_start, frame_reader

if TYPE_CHECKING:
    from newage.realtime.engine import LeanSocket

# Reading stops while this much inbound text waits for the lane's task (plus
# at most one read and one frame of ws_max_size); uvicorn's own lane stops
# after every message, which costs two system calls per read.
PAUSE_AT = 64 * 1024
TEXT = Opcode.TEXT
PONG = str(packet.PONG)
# uvicorn's and websockets' info lines of every handshake ("[accepted]",
# "connection open") are an access log, which newage keeps off for HTTP too
# (uvicorn.access is disabled); a third of a connect's logging. Warnings
# and errors still go to uvicorn.error.
QUIET = logging.getLogger("uvicorn.error.websocket")
QUIET.setLevel(logging.WARNING)


class _Resume:
    """Awaiting this finishes a coroutine that was started by hand (in
    ``data_received``) and suspended on ``first``: the task that awaits it
    waits for what the coroutine waits for and forwards results and
    cancellation to it."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, bool], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, bool]:
        coro, step = self.coro, self.first
        while True:
            try:
                sent = yield step
            except BaseException as exc:
                try:
                    step = coro.throw(exc)
                except StopIteration as stop:
                    return bool(stop.value)
            else:
                try:
                    step = coro.send(sent)
                except StopIteration as stop:
                    return bool(stop.value)


class Lane:
    """Frames from the protocol to one Engine.IO socket, and packets back."""

    __slots__ = (
        "busy",
        "closer",
        "context",
        "ended",
        "fast",
        "finished",
        "flushing",
        "head",
        "items",
        "limit",
        "paused",
        "pending",
        "protocol",
        "sock",
        "task",
        "ws",
    )

    def __init__(self, protocol: DirectProtocol) -> None:
        self.protocol = protocol
        self.items: list[str | bytes] = []
        self.pending = 0
        self.ended = False  # the websocket is gone or closing
        self.paused = False
        self.busy = False  # a task is handling frames; new ones queue behind it
        self.flushing = False
        self.sock: LeanSocket | None = None
        self.ws: Any = None
        self.fast: Any = None
        self.head = ""
        self.limit = 0
        self.task: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        self.finished: asyncio.Future[None] = protocol.loop.create_future()
        # every step of this connection's handlers runs in one context, by
        # hand or in a task, so a context variable set before a wait is
        # reset in the context that set it
        self.context = contextvars.copy_context()

    def start(self, sock: LeanSocket, ws: Any, head: str) -> None:
        server = sock.server
        self.sock = sock
        self.ws = ws
        self.head = head
        self.fast = getattr(server, "newage_fast_frame", None)
        self.limit = server.max_http_buffer_size
        sock.queue.notify = self.schedule_flush
        if not sock.queue.empty():
            self.schedule_flush()
        self.wake()

    # -- inbound, called by the protocol
    def put_nowait(self, message: dict[str, Any]) -> None:
        """uvicorn's own events (the protocol calls its queue's ``put_nowait``)."""
        if message["type"] == "websocket.receive":
            data = message.get("text")
            self.push(data if data is not None else message.get("bytes") or b"")
        else:
            self.ended = True  # a disconnect: close frame, lost connection, shutdown
        self.wake()

    def push(self, data: str | bytes) -> None:
        self.items.append(data)
        self.pending += len(data)

    def wake(self) -> None:
        if self.sock is None or self.finished.done():
            return
        if not self.busy:
            self.drain()
        if self.pending > PAUSE_AT and not self.paused and not self.ended:
            self.paused = True
            self.protocol.transport.pause_reading()
        if self.ended and not self.busy:
            self.finish()

    def drain(self) -> None:
        """Handle the waiting frames here, until one of them has to wait."""
        self.busy = True  # (nothing below may re-enter)
        sock = self.sock
        assert sock is not None
        fast, head, run = self.fast, self.head, self.context.run
        items = self.items
        for i, data in enumerate(items):
            self.pending -= len(data)
            if len(data) > self.limit:
                self.stop()  # too large: the connection goes
                break
            first: _Resume | None = None
            if type(data) is str:
                if data == PONG:
                    sock.schedule_ping()  # all that receive() does with it
                    continue
                if fast is not None and data.startswith(head):
                    coro = fast(sock.sid, data)
                    try:
                        step = run(coro.send, None)
                    except StopIteration as done:
                        if done.value:
                            continue
                        # refused: the full path, in order
                    except Exception:
                        sock.server.logger.exception("fast path failed")
                    else:
                        first = _Resume(coro, step)
            del items[: i + 1]
            self.task = self.protocol.loop.create_task(self.work(first, data), context=self.context)
            return
        items.clear()
        self.busy = False

    async def work(self, first: _Resume | None, data: str | bytes) -> None:
        """A frame that has to wait, and everything behind it."""
        try:
            # the first frame: its cheap path still running, or refused
            handled = False
            if first is not None:
                try:
                    handled = await first
                except Exception:
                    self.log_fast_failure()
            if not handled and not await self.handle(data, False):
                self.stop()
                return
            while self.items and not self.finished.done():
                batch, self.items = self.items, []
                for data in batch:
                    self.pending -= len(data)
                    if len(data) > self.limit or not await self.handle(data, True):
                        self.stop()
                        return
                    if self.finished.done():
                        return
                if self.paused and self.pending < PAUSE_AT // 2:
                    self.paused = False
                    if not self.protocol.transport.is_closing():
                        self.protocol.transport.resume_reading()
        finally:
            self.busy = False
            self.task = None
        if self.ended:
            self.finish()
        elif self.paused:
            self.paused = False
            self.protocol.transport.resume_reading()

    def log_fast_failure(self) -> None:
        if self.sock is not None:
            self.sock.server.logger.exception("fast path failed")

    async def handle(self, p: str | bytes, fast: bool) -> bool:
        """One packet, as LeanSocket's reader does; False to stop reading."""
        if self.sock is None:
            return False  # released: the socket is closed
        return await self.sock.take(p, self.fast if fast else None, self.head)

    def stop(self) -> None:
        self.items.clear()
        self.pending = 0
        if self.paused:  # the close handshake's answer must still be read
            self.paused = False
            if not self.protocol.transport.is_closing():
                self.protocol.transport.resume_reading()
        self.finish()

    def finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def release(self) -> None:
        """Let go of the Engine.IO socket and its websocket once both are
        closed. The protocol and its transport refer to each other, so they
        wait for the cyclic collector; whatever the lane still held (the
        socket, its queue and environ, the websocket) would wait with them
        instead of going when the connection does."""
        self.sock = self.ws = self.fast = self.closer = None

    # -- outbound
    def schedule_flush(self) -> None:
        if not self.flushing:
            self.flushing = True
            self.protocol.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything the socket has queued, in one write."""
        self.flushing = False
        sock = self.sock
        protocol = self.protocol
        if sock is None or not protocol.writable.is_set():
            return  # resume_writing calls again
        queue = sock.queue
        conn = protocol.conn
        closing = protocol.disconnected or protocol.close_sent
        end = False
        while not queue.empty():
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is None:
                end = True
                break
            if closing:
                continue
            data = pkt.encode()
            try:
                if type(data) is str:
                    conn.send_text(data.encode())
                else:
                    conn.send_binary(data)
            except InvalidState:
                closing = True
        if not closing:
            out = conn.data_to_send()
            if out:
                protocol.transport.write(b"".join(out))
        if end or sock.closed:
            self.close()

    def close(self) -> None:
        """End the websocket (a close frame, through uvicorn's code)."""
        if self.closer is None:
            self.closer = self.protocol.loop.create_task(self.ws.close())


class DirectProtocol(WebSocketsSansIOProtocol):
    lane: Lane | None = None
    reader: Any = None  # aiohttp's compiled frame reader, once the lane has it

    def data_received(self, data: bytes) -> None:
        reader, lane = self.reader, self.lane
        if reader is None:
            # the lane's frames go to aiohttp's reader from the first frame
            # boundary on (realtime/frames_in.py)
            if lane is None or not COMPILED or not at_frame_start(self.conn):
                super().data_received(data)
                return
            reader = self.reader = frame_reader(self, self.config.ws_max_size)
        reader.feed_data(data)
        if lane is not None:
            lane.wake()

    def feed_websockets(self, raw: bytes) -> None:
        """A whole control frame or binary message for websockets' protocol."""
        super().data_received(raw)

    def refuse(self, code: int) -> None:
        """aiohttp's reader refused a frame: close with its code."""
        if self.conn.state is OPEN:
            self.conn.send_close(code)
        if self.conn.close_sent is None:
            self.transport.close()
            return
        self.handle_parser_exception()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = self.conn.logger = QUIET
        self.conn.debug = False

    def attach(self) -> Lane | None:
        """Hand the connection's inbound frames to a lane from now on."""
        if self.lane is not None or self.disconnected or self.close_sent:
            return None
        lane = Lane(self)
        queued = self.queue
        # what already waits in uvicorn's queue (the frames that came with
        # an upgrade's last packet) goes first, in order
        while not queued.empty():
            lane.put_nowait(queued.get_nowait())  # type: ignore[arg-type]
        self.lane = lane
        self.queue = lane  # type: ignore[assignment]
        # The handshake is over, and what it parsed would stay for the
        # connection's life (about 3 KB): the request's headers (websockets'
        # parser keeps the request in its generator frame), the response,
        # and the scope's copy of the headers (the environ has them, as
        # strings; after the connect only its client address is read).
        self.request.headers.clear()
        self.request = self.response = None  # type: ignore[assignment]
        self.scope["headers"] = []
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        return lane

    def handle_events(self) -> None:
        lane = self.lane
        if lane is None:
            super().handle_events()
            return
        for event in self.conn.events_received():
            if type(event) is Frame and event.opcode is TEXT and event.fin and not self.close_sent:
                try:
                    lane.push(event.data.decode())  # type: ignore[union-attr]
                except UnicodeDecodeError:
                    self.invalid_utf8()
                    return
            elif isinstance(event, Frame):
                # control frames, binary and fragmented messages: uvicorn's
                # handlers, which end in send_receive_event_to_app or the
                # lane's put_nowait
                self.dispatch(event)
        lane.wake()

    def dispatch(self, event: Frame) -> None:
        opcode = event.opcode
        if opcode is Opcode.CONT:
            self.handle_cont(event)
        elif opcode is TEXT:
            self.handle_text(event)
        elif opcode is Opcode.BINARY:
            self.handle_bytes(event)
        elif opcode is Opcode.PING:
            self.handle_ping()
        elif opcode is Opcode.PONG:
            self.handle_pong(event)
        elif opcode is Opcode.CLOSE:
            self.handle_close(event)

    def send_receive_event_to_app(self) -> None:
        lane = self.lane
        if lane is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        if self.curr_msg_data_type == "text":
            try:
                lane.push(data.decode())
            except UnicodeDecodeError:
                self.invalid_utf8()
        else:
            lane.push(data)

    def invalid_utf8(self) -> None:
        self.logger.warning("Invalid UTF-8 sequence received from client.")
        self.refuse(1007)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.lane is not None:
            self.lane.schedule_flush()


def lane_of(ws: Any) -> Lane | None:
    """The direct lane of python-engineio's websocket ``ws``, when it runs on
    :class:`DirectProtocol` (uvicorn's ASGI ``send`` is a method of it)."""
    protocol = getattr(getattr(ws, "asgi_send", None), "__self__", None)
    if isinstance(protocol, DirectProtocol):
        return protocol.attach()
    return None


async def serve(sock: LeanSocket, ws: Any, lane: Lane, head: str) -> None:
    """``LeanSocket._websocket_handler`` after the upgrade, over a lane."""
    sock.server.logger.info("%s: Upgrade to websocket successful", sock.sid)
    lane.start(sock, ws, head)
    try:
        await lane.finished
    finally:
        task = lane.task
        if task is not None:
            task.cancel()
        lane.flush()  # what the socket queued before the end
        sock.queue.notify = None
        lane.close()
        assert lane.closer is not None
        await asyncio.shield(lane.closer)
        await sock.close(wait=False, abort=True, reason=sock.server.reason.TRANSPORT_CLOSE)
        lane.release()
