"""Every private name of python-engineio, python-socketio and uvicorn this server relies on.

The libraries are pinned to exact versions (pyproject.toml, requirements.lock)
because the realtime layer reaches past their public API in a few places:
the lean websocket socket (``realtime/engine.py``), the dispatch and
admission hooks (``realtime/server.py``), the stream fast path
(``realtime/fast_stream.py``), the fan-out (``realtime/outbox.py``) and,
for uvicorn, the websocket protocol the direct lane extends
(``realtime/direct_ws.py``). None of them offers a public extension point for these (no socket class
or environ builder option, no per-server queue factory that knows its
socket, no way to drop an unanswered callback), so each use is listed in
:data:`RELIED` with why it is needed and what breaks if it changes.
``tests/test_internals.py`` checks every entry (kind, parameters, and for
the code we copied, the upstream source) against the installed versions, so
a deliberate upgrade fails loudly at the first name that moved.

The helpers below are the one place that touches the plainly private
structures; the hot paths (``SocketOutbox.emit``, ``LeanSocket``) read the
listed attributes directly, because a call per packet costs measurably.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from engineio import async_socket

Kind = Literal["coroutine", "method", "attribute", "class", "key"]

ENGINE_SERVER = "engineio.async_server.AsyncServer"
ENGINE_SOCKET = "engineio.async_socket.AsyncSocket"
ASGI_DRIVER = "engineio.async_drivers.asgi"
SIO_SERVER = "socketio.async_server.AsyncServer"
SIO_MANAGER = "socketio.async_manager.AsyncManager"
UVICORN_WS = "uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol"
WS_PROTOCOL = "websockets.server.ServerProtocol"
AIOHTTP_READER = "aiohttp._websocket.reader"
AIOHTTP_READER_PY = "aiohttp._websocket.reader_py"  # the source the compiled reader is built from


@dataclass(frozen=True, slots=True)
class Relied:
    owner: str  # dotted path of the module or class holding the name
    name: str
    kind: Kind
    why: str  # why we need it, and what breaks if it changes
    params: tuple[str, ...] | None = None  # callables: parameter names after self
    source: str | None = None  # copied or replaced code: sha256[:16] of upstream source


def source_digest(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


RELIED: tuple[Relied, ...] = (
    # ---- python-engineio: the socket we swap for LeanSocket (realtime/engine.py)
    Relied(
        ENGINE_SOCKET,
        "AsyncSocket",
        "class",
        "swapped for LeanSocket via __class__ (needs no __slots__); else no fast path",
    ),
    Relied(
        ENGINE_SOCKET,
        "_websocket_handler",
        "coroutine",
        "copied into LeanSocket (plain awaits, stream frames); upstream fixes need re-copying",
        ("ws",),
        "27f120df4d717a24",
    ),
    Relied(
        ENGINE_SOCKET,
        "poll",
        "coroutine",
        "replaced (asyncio.timeout, no task per batch); the writer loop of the copy calls it",
        (),
        "826f58a9f3606db2",
    ),
    Relied(
        ENGINE_SOCKET,
        "schedule_ping",
        "method",
        "replaced by a timer handle; the server calls it after connect and on each pong",
        (),
        "fe316639159cd70d",
    ),
    Relied(
        ENGINE_SOCKET,
        "receive",
        "coroutine",
        "the copied handler feeds each decoded packet to it; renamed, nothing is received",
        ("pkt",),
    ),
    Relied(
        ENGINE_SOCKET,
        "close",
        "coroutine",
        "overridden (wakes the direct lane); the copied handler and drops pass abort/reason",
        ("wait", "abort", "reason"),
    ),
    Relied(
        ENGINE_SOCKET,
        "queue",
        "attribute",
        "outbound packets: a LeanQueue the outbox writes; renamed, budgets and sends break",
    ),
    Relied(
        ENGINE_SOCKET,
        "closed",
        "attribute",
        "the outbox skips closed sockets; else sends to dead ones",
    ),
    Relied(ENGINE_SOCKET, "closing", "attribute", "sent() and the ping timer stop on it"),
    Relied(
        ENGINE_SOCKET, "connected", "attribute", "tells an upgrade from a websocket-only connect"
    ),
    Relied(
        ENGINE_SOCKET, "upgrading", "attribute", "holds sends during the upgrade (copied handler)"
    ),
    Relied(
        ENGINE_SOCKET, "upgraded", "attribute", "set by the copied handler; the server reads it"
    ),
    Relied(
        ENGINE_SOCKET,
        "last_ping",
        "attribute",
        "the ping timer's state, shared with the server's check",
    ),
    Relied(
        ENGINE_SOCKET,
        "server",
        "attribute",
        "the socket's Engine.IO server: limits, logger, fast path",
    ),
    Relied(ENGINE_SOCKET, "sid", "attribute", "the Engine.IO sid handed to the fast path"),
    # ---- python-engineio: the server and its ASGI driver
    Relied(
        ENGINE_SERVER,
        "_async",
        "attribute",
        "the driver table; we copy it and swap translate_request, else environs cost a class each",
    ),
    Relied(
        ASGI_DRIVER,
        "_async",
        "key",
        "the driver table must hold the key we replace",
        ("translate_request",),
    ),
    Relied(
        ASGI_DRIVER,
        "translate_request",
        "coroutine",
        "replaced by lean_translate_request (engine.py); upstream changes must be mirrored",
        ("scope", "receive", "send"),
        "39e74733f1fe46aa",
    ),
    Relied(
        ENGINE_SERVER,
        "sockets",
        "attribute",
        "eio sid -> socket: the outbox writes to its queues, drops and the tests look sockets up",
    ),
    Relied(ENGINE_SERVER, "reason", "attribute", "disconnect reasons passed to close()"),
    Relied(ENGINE_SERVER, "ping_interval", "attribute", "LeanSocket's ping timer and poll timeout"),
    Relied(ENGINE_SERVER, "ping_timeout", "attribute", "LeanSocket's poll timeout"),
    Relied(ENGINE_SERVER, "max_http_buffer_size", "attribute", "the copied handler's frame limit"),
    Relied(
        ENGINE_SERVER, "logger", "attribute", "the copied handler logs upgrade failures through it"
    ),
    # ---- python-socketio: hooks NewAgeServer overrides or calls (realtime/server.py)
    Relied(
        SIO_SERVER,
        "_handle_eio_connect",
        "coroutine",
        "overridden: admission, LeanSocket swap, outbound budget; renamed, none of them happen",
        ("eio_sid", "environ"),
    ),
    Relied(
        SIO_SERVER,
        "_handle_eio_disconnect",
        "coroutine",
        "overridden: admission bookkeeping; renamed, connection counts leak",
        ("eio_sid", "reason"),
    ),
    Relied(
        SIO_SERVER,
        "_handle_eio_message",
        "coroutine",
        "replaced: clear errors for oversized/undecodable/binary packets; mirrors upstream",
        ("eio_sid", "data"),
        "bef50fc0e1635921",
    ),
    Relied(
        SIO_SERVER,
        "_handle_event",
        "coroutine",
        "overridden: our dispatcher (validation, one ack, arrival order)",
        ("eio_sid", "namespace", "id", "data"),
    ),
    Relied(
        SIO_SERVER,
        "_handle_connect",
        "coroutine",
        "overridden: after_connect runs once CONNECT is out; duplicate connects refused",
        ("eio_sid", "namespace", "data"),
    ),
    Relied(
        SIO_SERVER,
        "_handle_disconnect",
        "coroutine",
        "called by our message dispatch for DISCONNECT packets",
        ("eio_sid", "namespace", "reason"),
    ),
    Relied(
        SIO_SERVER,
        "_handle_ack",
        "coroutine",
        "called by our message dispatch for ACK packets",
        ("eio_sid", "namespace", "id", "data"),
    ),
    Relied(
        SIO_SERVER,
        "_send_packet",
        "coroutine",
        "send_ack writes an ACK packet through it",
        ("eio_sid", "pkt"),
    ),
    Relied(SIO_SERVER, "eio", "attribute", "the Engine.IO server under the Socket.IO one"),
    Relied(SIO_SERVER, "environ", "attribute", "eio sid -> environ: peer address in drop logs"),
    Relied(SIO_SERVER, "packet_class", "attribute", "encodes once per emit (outbox) and decodes"),
    Relied(SIO_SERVER, "namespace_handlers", "attribute", "namespace -> our BaseNamespace"),
    Relied(SIO_SERVER, "reason", "attribute", "the reason given to _handle_disconnect"),
    # ---- python-socketio: the manager (realtime/outbox.py)
    Relied(
        SIO_MANAGER,
        "rooms",
        "attribute",
        "namespace -> rooms: the outbox skips namespaces nobody joined",
    ),
    Relied(
        SIO_MANAGER,
        "callbacks",
        "attribute",
        "sid -> ack callbacks: a call given up on is removed, else memory stays until disconnect",
    ),
    # ---- uvicorn: the sans-I/O websocket protocol DirectProtocol extends
    # (realtime/direct_ws.py, uvicornWs newage)
    Relied(
        UVICORN_WS,
        "handle_events",
        "method",
        "overridden once the lane is attached (text frames to the lane); mirrors upstream",
        (),
        "b2c9351a5d13493f",
    ),
    Relied(
        UVICORN_WS,
        "send_receive_event_to_app",
        "method",
        "overridden: fragmented and binary messages go to the lane; mirrors upstream",
        (),
        "a2b10de91477dc1d",
    ),
    Relied(
        UVICORN_WS,
        "handle_connect",
        "method",
        "sets request, response and scope, which attach() releases after the handshake",
        ("event",),
        "fe2a087aa2223cf8",
    ),
    Relied(UVICORN_WS, "resume_writing", "method", "extended: the lane flushes what waited", ()),
    Relied(UVICORN_WS, "handle_cont", "method", "the lane's dispatch of fragments", ("event",)),
    Relied(
        UVICORN_WS, "handle_text", "method", "the lane's dispatch of a first fragment", ("event",)
    ),
    Relied(UVICORN_WS, "handle_bytes", "method", "the lane's dispatch of binary", ("event",)),
    Relied(UVICORN_WS, "handle_ping", "method", "the lane's dispatch of pings", ()),
    Relied(UVICORN_WS, "handle_pong", "method", "the lane's dispatch of pongs", ("event",)),
    Relied(UVICORN_WS, "handle_close", "method", "the lane's dispatch of close frames", ("event",)),
    Relied(
        UVICORN_WS,
        "handle_parser_exception",
        "method",
        "closes on invalid UTF-8 in a frame for the lane",
        (),
    ),
    Relied(
        UVICORN_WS,
        "queue",
        "attribute",
        "uvicorn's inbound events; attach() moves what waits there to the lane and replaces it",
    ),
    Relied(UVICORN_WS, "read_paused", "attribute", "attach() resumes reading uvicorn paused"),
    Relied(UVICORN_WS, "conn", "attribute", "websockets' ServerProtocol: frames in and out"),
    Relied(
        UVICORN_WS, "writable", "attribute", "the lane writes only while the transport takes it"
    ),
    Relied(UVICORN_WS, "close_sent", "attribute", "no frames to the lane after a close"),
    Relied(UVICORN_WS, "disconnected", "attribute", "the lane stops writing"),
    Relied(UVICORN_WS, "frames", "attribute", "fragments of the message being received"),
    Relied(UVICORN_WS, "curr_msg_data_type", "attribute", "text or binary, for fragments"),
    Relied(UVICORN_WS, "logger", "attribute", "replaced by a quieter one (no handshake lines)"),
    # ---- websockets and aiohttp: the lane's frames parsed by aiohttp's
    # compiled reader from a frame boundary on (realtime/frames_in.py)
    Relied(
        "websockets.protocol.Protocol",
        "parse",
        "method",
        "between frames it waits in reader.at_eof(): at_frame_start() looks for that",
        (),
        "45aaf900644b63c4",
    ),
    Relied(
        "websockets.streams.StreamReader",
        "at_eof",
        "method",
        "the generator at_frame_start() finds innermost at a frame boundary",
        (),
        "106a9f1e43abf91f",
    ),
    Relied(WS_PROTOCOL, "parser", "attribute", "the parser generator at_frame_start() inspects"),
    Relied(WS_PROTOCOL, "reader", "attribute", "its buffer must be empty at a frame boundary"),
    Relied(
        AIOHTTP_READER,
        "WebSocketDataQueue",
        "attribute",
        "the compiled reader is typed against it: Inbound subclasses it to take each message",
    ),
    Relied(
        f"{AIOHTTP_READER_PY}.WebSocketDataQueue",
        "feed_data",
        "method",
        "overridden by Inbound (cpdef: the compiled reader calls the override)",
        ("data", "size"),
    ),
    Relied(
        f"{AIOHTTP_READER_PY}.WebSocketDataQueue",
        "set_exception",
        "method",
        "overridden by Inbound: a refused frame closes with its code",
        ("exc", "exc_cause"),
    ),
    Relied(
        f"{AIOHTTP_READER_PY}.WebSocketReader",
        "_handle_frame",
        "method",
        "the messages Inbound reads: (type, data, extra) tuples, close as (CLOSE, code, reason)",
        ("fin", "opcode", "payload", "compressed"),
        "fb9aeaf70a2f754e",
    ),
)


# ---------------------------------------------------------------- helpers
def use_translate_request(eio: Any, translate: Callable[..., Any]) -> None:
    """Make ``eio`` build environs with ``translate`` (a copy of the driver
    table: the module's dict is shared by every server in the process)."""
    eio._async = {**eio._async, "translate_request": translate}


def adopt_socket(sock: Any, lean: type[Any], queue: Callable[[Any], Any]) -> bool:
    """Turn a stock Engine.IO socket into ``lean``, its queue into
    ``queue(old_queue)``; False when it is not a stock socket."""
    if type(sock) is not async_socket.AsyncSocket:
        return False
    sock.__class__ = lean
    sock.queue = queue(sock.queue)
    return True


def engine_socket(sio: Any, eio_sid: str | None) -> Any:
    """The Engine.IO socket of ``eio_sid``, or None."""
    return sio.eio.sockets.get(eio_sid) if eio_sid is not None else None


def engine_sockets(sio: Any) -> list[Any]:
    return list(sio.eio.sockets.values())


def forget_engine_socket(sio: Any, eio_sid: str) -> None:
    sio.eio.sockets.pop(eio_sid, None)


def environ_of(sio: Any, eio_sid: str) -> dict[str, Any]:
    return sio.environ.get(eio_sid) or {}


def forget_callback(manager: Any, sid: str, callback: Any) -> None:
    """Drop an ack callback python-socketio still holds for ``sid``."""
    waiting = manager.callbacks.get(sid)
    if not waiting:
        return
    for ack_id, held in list(waiting.items()):
        if held is callback:
            del waiting[ack_id]
            return


def pending_callbacks(manager: Any) -> int:
    """Callbacks held for unanswered calls, all sockets (each dict also
    holds the next ack id)."""
    return sum(len(w) - 1 for w in manager.callbacks.values())
