"""uvicornWs ``newage`` (realtime/direct_ws.py): after the handshake the
Engine.IO websocket frames go from websockets' parser straight to the
socket, without ASGI. A raw websocket client (websockets' sans-I/O client
over a plain TCP connection) writes many frames in one write, so the server
reads them together: they must all be handled, in order, and the ones that
must not pass (too large, not UTF-8) close the connection."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from newage.protocol.names import ClientKind
from newage.realtime.direct_ws import PAUSE_AT, DirectProtocol
from newage.realtime.frames_in import at_frame_start
from tests.helpers.actors import DECLARED, connect
from tests.helpers.client import auth
from tests.helpers.fake_extension import token_events
from tests.helpers.rawhttp import PollingSession
from tests.helpers.server import RunningServer
from tests.helpers.wait import eventually
from tests.test_slow_consumers import busy_room, say, until_dropped

NEWAGE = {"uvicornWs": "newage", "maxPayloadBytes": 1024}
on_newage = pytest.mark.parametrize("server_settings", [NEWAGE])


class RawWebSocket:
    """An Engine.IO websocket client that decides how frames are written."""

    def __init__(self, port: int, url: str | None = None) -> None:
        self.port = port
        url = url or f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        self.proto = ClientProtocol(parse_uri(url))
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.texts: list[str] = []
        self.closed: Close | None = None
        self.pongs = True  # answer Engine.IO pings
        self.pings = 0
        self.ws_pongs: list[bytes] = []  # websocket pong frames

    async def open(self, engineio_open: bool = True) -> str:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.proto.send_request(self.proto.connect())
        self.flush()
        if not engineio_open:  # an upgrade: the session is already open
            await self.read_until(lambda: self.proto.state.name == "OPEN")
            return ""
        await self.read_until(lambda: bool(self.texts))
        opened = self.texts.pop(0)
        assert opened.startswith("0{"), opened
        return opened

    def flush(self) -> None:
        assert self.writer is not None
        self.writer.write(b"".join(self.proto.data_to_send()))

    def send_all(self, texts: list[str]) -> None:
        """Every text as its own frame, all in one write."""
        for text in texts:
            self.proto.send_text(text.encode())
        self.flush()

    async def read_until(self, done: Any, timeout: float = 10) -> None:
        assert self.reader is not None
        async with asyncio.timeout(timeout):
            while not done():
                data = await self.reader.read(65536)
                if not data:
                    self.proto.receive_eof()
                else:
                    self.proto.receive_data(data)
                for event in self.proto.events_received():
                    if isinstance(event, Response):
                        assert event.status_code == 101, event
                    elif event.opcode.name == "TEXT":
                        text = event.data.decode()
                        if text == "2":  # Engine.IO ping
                            self.pings += 1
                            if self.pongs:
                                self.send_all(["3"])
                        else:
                            self.texts.append(text)
                    elif event.opcode.name == "CLOSE":
                        self.closed = self.proto.close_rcvd
                    elif event.opcode.name == "PONG":
                        self.ws_pongs.append(bytes(event.data))
                self.flush()
                if not data:
                    return

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def direct_lanes(server: RunningServer) -> int:
    """Connections on which the lane has taken over."""
    assert server._server is not None
    return sum(
        1
        for conn in server._server.server_state.connections
        if isinstance(conn, DirectProtocol) and conn.lane is not None
    )


def compiled_readers(server: RunningServer) -> int:
    """Connections whose frames aiohttp's compiled reader parses (frames_in.py)."""
    assert server._server is not None
    return sum(
        1
        for conn in server._server.server_state.connections
        if isinstance(conn, DirectProtocol) and conn.reader is not None
    )


async def raw_extension(server: RunningServer, name: str) -> RawWebSocket:
    key = await server.client(name, ClientKind.SILLYTAVERN)
    raw = RawWebSocket(server.port)
    await raw.open()
    data = auth(name, key, clientType=DECLARED[ClientKind.SILLYTAVERN])
    raw.send_all(["40/llm," + json.dumps(data)])
    await raw.read_until(lambda: any(t.startswith("40/llm,") for t in raw.texts))
    return raw


def token_frames(output_id: str, token: str, first: bool) -> list[str]:
    """A token as the extension sends it: START, five data sub-chunks, END."""
    return [
        "42/llm," + json.dumps([event, payload], separators=(",", ":"))
        for event, payload in token_events(output_id, token, first=first)
    ]


@on_newage
async def test_a_stream_written_in_one_go_is_relayed_whole_and_in_order(server, peers):
    assert server.app is not None
    raw = await raw_extension(server, "SillyTavern-raw")
    try:
        web = await connect(server, peers, "web")
        assert direct_lanes(server) == 2  # the raw extension and the client
        ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"})
        assert ack["status"] == "ok", ack
        await raw.read_until(lambda: any("LLM_REQUEST" in t for t in raw.texts))
        before = server.app.fast.handled
        # 400 tokens: 2,800 frames, about 600 KB, in one write, so reading
        # pauses and resumes on the way (PAUSE_AT)
        tokens = [f"{i:07d}.token-text|" for i in range(400)]
        output_id = str(uuid.uuid4())
        frames = [f for i, t in enumerate(tokens) for f in token_frames(output_id, t, i == 0)]
        assert sum(map(len, frames)) > 4 * PAUSE_AT
        raw.send_all(frames)
        raw.send_all(['42/llm,["STOP_PROCESSING",{}]'])
        end = await web.next("/llm", "SERVER_STREAM_END", timeout=20)
        chunks = web.received("/llm", "SERVER_STREAM_DATA")
        assert "".join(c["data"] for c in chunks) == "".join(tokens) == end["data"]
        assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
        # the stream frames took the fast path, from the lane, parsed by
        # aiohttp's reader on both connections
        assert server.app.fast.handled - before == len(frames)
        assert compiled_readers(server) == 2
    finally:
        await raw.close()


@on_newage
async def test_frames_queued_before_the_lane_keep_their_place(server, peers):
    """An upgrade from polling: the probe goes through the ASGI app, and the
    frames written together with the UPGRADE packet wait in uvicorn's queue
    when the lane takes over; they keep their place ahead of later ones."""
    key = await server.client("web")
    session = PollingSession(server.port)
    await session.open()
    raw = RawWebSocket(server.port, session.upgrade_url)
    try:
        await raw.open(engineio_open=False)
        raw.send_all(["2probe"])
        await raw.read_until(lambda: "3probe" in raw.texts)
        calls = [f'42/rooms,{i}["GET_ROOM_INFO",{{"roomName":"nope{i}"}}]' for i in range(60)]
        raw.send_all(["5", "40/rooms," + json.dumps(auth("web", key)), *calls[:50]])
        await raw.read_until(lambda: sum(t.startswith("43/rooms,") for t in raw.texts) == 50)
        raw.send_all(calls[50:])
        await raw.read_until(lambda: sum(t.startswith("43/rooms,") for t in raw.texts) == 60)
        acks = [t for t in raw.texts if t.startswith("43/rooms,")]
        assert [int(a[len("43/rooms,") :].split("[", 1)[0]) for a in acks] == list(range(60))
        assert direct_lanes(server) == 1
    finally:
        await raw.close()
        await session.close()


@on_newage
async def test_a_frame_past_the_limit_closes_the_connection(server, peers):
    assert server.app is not None
    raw = await raw_extension(server, "SillyTavern-big")
    try:
        # above the hard limit (4 x maxPayloadBytes) but within ws_max_size:
        # the lane's check, not websockets', refuses it
        big = '42/llm,["message",{"data":"' + "x" * 4200 + '"}]'
        raw.send_all(["3", big])
        await raw.read_until(lambda: raw.closed is not None)
        assert raw.closed is not None and raw.closed.code == 1000
        await eventually(lambda: direct_lanes(server) == 0)
    finally:
        await raw.close()


@on_newage
async def test_fragmented_and_binary_messages_take_uvicorns_handlers(server, peers):
    """A text message in two fragments is one packet; a binary one gets the
    clear refusal of the full path."""
    key = await server.client("web")
    raw = RawWebSocket(server.port)
    try:
        await raw.open()
        connect_packet = "40" + json.dumps(auth("web", key))  # the namespace "/"
        raw.proto.send_text(connect_packet[:7].encode(), fin=False)
        raw.proto.send_continuation(connect_packet[7:].encode(), fin=True)
        raw.flush()
        await raw.read_until(lambda: any(t.startswith('40{"sid"') for t in raw.texts))
        raw.proto.send_binary(b"\x01\x02")
        raw.flush()
        await raw.read_until(lambda: any("ERROR" in t for t in raw.texts))
        error = next(t for t in raw.texts if "ERROR" in t)
        assert "Binary attachments are not supported" in error, error
        assert direct_lanes(server) == 1
        assert compiled_readers(server) == 1
    finally:
        await raw.close()


@pytest.mark.parametrize(
    "server_settings", [{**NEWAGE, "maxPayloadBytes": 1_000_000, "outboundMaxBytes": 500_000}]
)
async def test_a_reader_that_stops_is_dropped_on_the_lane_too(server, peers):
    """Packets for a client whose TCP window is shut wait in its queue (the
    lane writes nothing while the transport is paused), so the outbound
    budget trips and the connection is dropped; the others go on."""
    stalled, writer, watcher = await busy_room(server, peers)
    assert direct_lanes(server) >= 3
    sent = await until_dropped(stalled, writer, 300)
    assert server.app is not None
    await eventually(lambda: "stall" not in server.app.presence.sessions)
    await say(writer, sent)
    assert writer.connected("/llm") and watcher.connected("/llm")
    stalled.close()


@pytest.mark.parametrize("server_settings", [{**NEWAGE, "pingInterval": 1000, "pingTimeout": 1000}])
async def test_engineio_pings_keep_an_answering_client_and_close_a_silent_one(server, peers):
    """Pongs are handled inside data_received (they re-arm the ping timer);
    a client that stops answering is closed by Engine.IO's ping timeout,
    through the lane."""
    key = await server.client("web")
    answering, silent = RawWebSocket(server.port), RawWebSocket(server.port)
    silent.pongs = False
    try:
        for raw in (answering, silent):
            await raw.open()
            raw.send_all(["40/rooms," + json.dumps(auth("web", key))])
        # both read at once (a client answers only while it reads)
        await asyncio.gather(
            silent.read_until(lambda: silent.closed is not None, timeout=8),
            answering.read_until(lambda: answering.pings >= 4, timeout=8),
        )
        assert silent.pings >= 1
        answering.send_all(['42/rooms,7["GET_ROOM_INFO",{"roomName":"nope"}]'])
        await answering.read_until(lambda: any(t.startswith("43/rooms,7") for t in answering.texts))
        assert answering.closed is None
    finally:
        await answering.close()
        await silent.close()


@on_newage
async def test_control_frames_between_stream_frames_keep_websockets_behaviour(server, peers):
    """On aiohttp's reader, pings, pongs and the close handshake are still
    websockets' (each written back to it as one whole frame), in order with
    the text frames around them; a stream split into single bytes is whole."""
    assert server.app is not None
    raw = await raw_extension(server, "SillyTavern-ctl")
    try:
        web = await connect(server, peers, "web")
        ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"})
        assert ack["status"] == "ok", ack
        await raw.read_until(lambda: any("LLM_REQUEST" in t for t in raw.texts))
        output_id = str(uuid.uuid4())
        first = token_frames(output_id, "one|", True)
        second = token_frames(output_id, "two|", False)
        for text in first[:3]:
            raw.proto.send_text(text.encode())
        raw.proto.send_ping(b"are you there")
        for text in first[3:]:
            raw.proto.send_text(text.encode())
        raw.proto.send_pong(b"unasked")  # allowed, ignored
        wire = b"".join(raw.proto.data_to_send())
        assert raw.writer is not None
        for i in range(len(wire)):  # one byte per write: frames cut anywhere
            raw.writer.write(wire[i : i + 1])
            await raw.writer.drain()
        await raw.read_until(lambda: raw.ws_pongs == [b"are you there"])
        assert compiled_readers(server) == 2
        raw.send_all(second)
        raw.send_all(['42/llm,["STOP_PROCESSING",{}]'])
        end = await web.next("/llm", "SERVER_STREAM_END")
        assert end["data"] == "one|two|"
        raw.proto.send_close(4000, "bye")
        raw.flush()
        await raw.read_until(lambda: raw.closed is not None)
        assert raw.closed is not None and raw.closed.code == 4000
        await eventually(lambda: direct_lanes(server) == 1)  # the web client's
    finally:
        await raw.close()


# what aiohttp's reader refuses, and the close code it gets: text that is
# not UTF-8; a reserved opcode (3), masked and empty
REFUSED = [
    (Frame(Opcode.TEXT, b"42/llm,\xff\xfe").serialize(mask=True), 1007),
    (b"\x83\x80" + b"\x00" * 4, 1002),
]


@pytest.mark.parametrize(("wire", "code"), REFUSED, ids=["utf8", "opcode"])
@on_newage
async def test_a_refused_frame_closes_with_its_code_and_spares_the_others(
    server, peers, wire, code
):
    raw = await raw_extension(server, "SillyTavern-bad")
    try:
        web = await connect(server, peers, "web")
        raw.send_all(["3"])  # a first frame after the handshake: the reader takes over
        await eventually(lambda: compiled_readers(server) == 2)
        assert raw.writer is not None
        raw.writer.write(wire)
        await raw.read_until(lambda: raw.closed is not None)
        assert raw.closed is not None and raw.closed.code == code
        ack = await web.call("/rooms", "GET_ROOMS", {})
        assert ack["status"] == "ok", ack  # the other connection still answers
    finally:
        await raw.close()


def test_the_reader_takes_over_only_between_frames():
    """at_frame_start: websockets' parser has consumed whole frames and
    nothing of the next one (a frame's header alone leaves its buffer empty
    too, with the parser inside the frame)."""
    conn = ServerProtocol()
    request = ClientProtocol(parse_uri("ws://127.0.0.1/")).connect()
    conn.receive_data(request.serialize())
    (handshake,) = conn.events_received()
    conn.send_response(conn.accept(handshake))
    assert at_frame_start(conn)
    wire = Frame(Opcode.TEXT, b"42/llm,[]").serialize(mask=True)
    for cut in range(1, len(wire)):
        conn.receive_data(wire[:cut])
        assert not at_frame_start(conn), cut
        conn.receive_data(wire[cut:])
        assert at_frame_start(conn), cut
    assert len(conn.events_received()) == len(wire) - 1
