"""The Engine.IO websocket transport without the ASGI hop (``uvicornWs``
``newage``).

Under uvicorn every inbound websocket frame becomes an ASGI message dict,
goes through an ``asyncio.Queue`` and python-engineio's ``WebSocket.wait``,
and uvicorn pauses and resumes reading around each one; every outbound
packet goes back the same way, one ``transport.write`` each. A streamed
token is seven small inbound frames, so that hop was a large share of the
server's CPU per token (docs/performance.md, "Transport candidates").

:class:`DirectProtocol` is uvicorn's sans-I/O websockets protocol (frames
parsed by websockets' maintained ``ServerProtocol``) with one addition: once
the Engine.IO socket has the connection (after the HTTP handshake, which
still runs through the whole ASGI app: proxy headers, origin checks,
admission, the Engine.IO connect handler, the polling upgrade's probe), it
attaches a :class:`Lane`. From then on the text of every complete frame of
one ``data_received`` is appended to the lane and the socket's reader wakes
once for all of them; outbound packets of one writer round are framed by
websockets and written with one ``transport.write``. Pings, pongs, close
frames, ``ws_max_size`` and the keepalive stay uvicorn's code.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode

from engineio import exceptions, packet

if TYPE_CHECKING:
    from newage.realtime.engine import LeanSocket

# Reading stops while this much inbound text waits for the socket's reader
# (plus at most one read and one frame of ws_max_size); uvicorn's own lane
# stops after every message, which costs two system calls per read.
PAUSE_AT = 64 * 1024
TEXT = Opcode.TEXT


class Lane:
    """Frames from the protocol to one Engine.IO socket, and packets back."""

    __slots__ = ("ended", "items", "paused", "pending", "protocol", "waiter")

    def __init__(self, protocol: DirectProtocol) -> None:
        self.protocol = protocol
        self.items: list[str | bytes] = []
        self.pending = 0
        self.ended = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # -- inbound, called by the protocol
    def put_nowait(self, message: dict[str, Any]) -> None:
        """uvicorn's own events (it calls its queue's ``put_nowait``)."""
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
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.pending > PAUSE_AT and not self.paused and not self.ended:
            self.paused = True
            self.protocol.transport.pause_reading()

    # -- inbound, the socket's reader
    async def take(self) -> list[str | bytes] | None:
        """Every frame that arrived since the last call; None once closed."""
        while not self.items:
            if self.ended:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        items = self.items
        self.items = []
        self.pending = 0
        if self.paused:
            self.paused = False
            if not self.protocol.transport.is_closing():
                self.protocol.transport.resume_reading()
        return items

    # -- outbound
    async def send(self, encoded: list[str | bytes]) -> bool:
        """Frame and write one round of packets; False once it cannot."""
        protocol = self.protocol
        if not protocol.writable.is_set():
            await protocol.writable.wait()
        if protocol.disconnected or protocol.close_sent:
            return False
        conn = protocol.conn
        try:
            for data in encoded:
                if type(data) is str:
                    conn.send_text(data.encode())
                else:
                    conn.send_binary(data)
        except InvalidState:
            return False
        protocol.transport.write(b"".join(conn.data_to_send()))
        return True


class DirectProtocol(WebSocketsSansIOProtocol):
    lane: Lane | None = None

    def attach(self) -> Lane | None:
        """Hand the connection's inbound frames to a lane from now on."""
        if self.lane is not None or self.disconnected or self.close_sent:
            return None
        lane = Lane(self)
        queued = self.queue
        # what already waits in uvicorn's queue (often the first CONNECT)
        # goes first, in order
        while not queued.empty():
            lane.put_nowait(queued.get_nowait())  # type: ignore[arg-type]
        self.lane = lane
        self.queue = lane  # type: ignore[assignment]
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        lane.wake()
        return lane

    def handle_events(self) -> None:
        lane = self.lane
        if lane is None:
            super().handle_events()
            return
        for event in self.conn.events_received():
            if type(event) is Frame and event.opcode is TEXT and event.fin and not self.close_sent:
                try:
                    lane.push(event.data.decode())
                except UnicodeDecodeError:
                    self.logger.info("Invalid UTF-8 sequence received from client.")
                    self.conn.send_close(1007)
                    self.handle_parser_exception()
                    return
            elif isinstance(event, Frame):
                # control frames, binary and fragmented messages: uvicorn's
                # handlers, which end in send_receive_event_to_app or the lane's
                # put_nowait
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
                self.logger.info("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
        else:
            lane.push(data)


def lane_of(ws: Any) -> Lane | None:
    """The direct lane of python-engineio's websocket ``ws``, when it runs on
    :class:`DirectProtocol` (uvicorn's ASGI ``send`` is a method of it)."""
    protocol = getattr(getattr(ws, "asgi_send", None), "__self__", None)
    if isinstance(protocol, DirectProtocol):
        return protocol.attach()
    return None


async def serve(sock: LeanSocket, ws: Any, lane: Lane, head: str) -> None:
    """``LeanSocket._websocket_handler`` after the upgrade, over a lane."""
    server = sock.server
    limit = server.max_http_buffer_size

    async def writer() -> None:
        while True:
            try:
                packets = await sock.poll()
            except exceptions.QueueEmpty:
                break
            if not packets:
                break  # the socket is closing
            try:
                if not await lane.send([pkt.encode() for pkt in packets]):
                    break
            except Exception:
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    server.logger.info("%s: Upgrade to websocket successful", sock.sid)
    fast = getattr(server, "newage_fast_frame", None)
    receive = sock.receive
    running = True
    while running:
        frames = await lane.take()
        if frames is None:
            break
        for p in frames:
            if len(p) > limit:
                running = False  # packet too large: drop the connection
                break
            if fast is not None and type(p) is str and p.startswith(head):
                try:
                    if await fast(sock.sid, p):
                        continue
                except Exception:
                    server.logger.exception("fast path failed")
            try:
                await receive(packet.Packet(encoded_packet=p))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                server.logger.info("Receive error -- socket is closed")
                running = False
                break
            except Exception:
                server.logger.exception("Unknown receive error")
    await sock.queue.put(None)  # unlock the writer task so it can exit
    await writer_task
    await sock.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
