"""Inbound websocket frames of the direct lane, parsed by aiohttp's compiled reader.

websockets' sans-I/O parser (what uvicorn's protocol uses) is a chain of
Python generators: about 2.8 µs of CPU per frame, and a streamed token is
seven frames. aiohttp's ``WebSocketReader`` is compiled (Cython), takes
bytes as they arrive (``feed_data``) and hands over each complete message,
text already decoded: about 0.6 µs per frame (``bench/frame_parse.py``).

Only data frames take this way. Control frames (ping, pong, close) and
binary messages are written back as one whole masked frame and fed to
websockets' ``ServerProtocol``, so the close handshake, pong replies and
uvicorn's handlers stay theirs; websockets keeps parsing from a frame
boundary because it only ever gets whole frames from here. The switch from
websockets' parser to this one is made only at a frame boundary
(:func:`at_frame_start`); a connection that is never at one stays on
websockets' parser, which is correct, only slower.

aiohttp's reader refuses what websockets refused (invalid UTF-8 with 1007,
messages past ``ws_max_size`` with 1009, protocol errors with 1002), but it
does not insist that a client masks its frames as websockets did: masking
protects proxies from a browser's scripts, and a browser always masks.

What of aiohttp and websockets this relies on (the queue class the compiled
reader is typed against, the shape of websockets' parser) is listed in
``realtime/internals.py``; aiohttp is pinned exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from aiohttp._websocket import reader as aiohttp_reader
from aiohttp.http_websocket import WebSocketError, WebSocketReader, WSMsgType
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import OPEN
from websockets.streams import StreamReader

if TYPE_CHECKING:
    from newage.realtime.direct_ws import DirectProtocol

# the compiled reader, or None when aiohttp runs without its extensions
# (its pure-Python reader is slower than websockets')
COMPILED = WebSocketReader.__module__.endswith("reader_c")
TEXT = WSMsgType.TEXT
OPCODES = {
    WSMsgType.BINARY: Opcode.BINARY,
    WSMsgType.PING: Opcode.PING,
    WSMsgType.PONG: Opcode.PONG,
}
AT_EOF = StreamReader.at_eof.__code__
# the queue's own byte limit: never reached, this queue keeps nothing (the
# lane bounds what waits, PAUSE_AT)
NO_LIMIT = 2**30


def at_frame_start(conn: Any) -> bool:
    """websockets' parser has consumed whole frames and nothing more: it waits
    in ``at_eof`` with an empty buffer (between frames), not inside
    ``Frame.parse`` (a frame's header already read)."""
    if conn.reader.buffer or conn.state is not OPEN:
        return False
    gen = conn.parser
    while gen is not None:
        inner = gen.gi_yieldfrom
        if inner is None:
            return gen.gi_code is AT_EOF
        gen = inner
    return False


class Inbound(aiohttp_reader.WebSocketDataQueue):
    """Where aiohttp's reader puts each message: text to the lane, the rest
    back to websockets as a whole frame."""

    __slots__ = ("closed", "direct")  # one per connection: no instance dict

    def __init__(self, protocol: DirectProtocol) -> None:
        # (the protocol is only paused by the queue past its limit: never)
        super().__init__(cast(Any, protocol), NO_LIMIT, loop=protocol.loop)
        self.direct = protocol
        self.closed = False  # a close frame came: what follows is not read

    def feed_data(self, data: Any, size: int) -> None:
        if self.closed:
            return
        kind = data[0]
        if kind is TEXT:
            lane = self.direct.lane
            if lane is not None and not self.direct.close_sent:
                lane.push(data[1])
            return
        if kind is WSMsgType.CLOSE:
            self.closed = True
            code, reason = data[1], data[2]
            payload = Close(code, reason).serialize() if code else b""
            frame = Frame(Opcode.CLOSE, payload)
        else:
            frame = Frame(OPCODES[kind], bytes(data[1]))
        self.direct.feed_websockets(frame.serialize(mask=True))

    def set_exception(self, exc: BaseException, exc_cause: Any = None) -> None:
        code = exc.code if isinstance(exc, WebSocketError) else 1002
        self.closed = True
        self.direct.refuse(code)

    def feed_eof(self) -> None:
        pass  # the end of the connection is uvicorn's (connection_lost)


def frame_reader(protocol: DirectProtocol, max_size: int) -> WebSocketReader | None:
    if not COMPILED:
        return None
    return WebSocketReader(Inbound(protocol), max_size, False, True)
