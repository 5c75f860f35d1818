"""Server CPU per inbound websocket frame: websockets' sans-I/O parser (what
uvicorn's ``websockets-sansio`` uses, and the direct lane until a frame
boundary), aiohttp's compiled reader (the direct lane's, realtime/frames_in.py)
and picows' Cython parser, on a loopback connection, outside newage.

Each server only parses: it decodes the text of every frame and counts it.
A client thread writes the extension's stream frames (about 150 bytes, as in
``bench/reference/loadgen.mjs``), masked, ``--batch`` frames per write; the
figure is the event loop thread's CPU time (``time.thread_time``) per frame.
picows is not a dependency (docs/performance.md says why it is not used):
``pip install picows`` to include it.

Usage: python -m bench.frame_parse [--frames N] [--batch B]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import threading
import time
from typing import Any, cast

from aiohttp._websocket import reader as aiohttp_reader
from aiohttp.http_websocket import WebSocketReader
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

BASE = {
    "streamId": "3f1c2a44-8d1e-4c55-9a62-0c7c6a1b2d3e",
    "outputId": "9a8b7c6d-1e2f-4a5b-8c9d-0e1f2a3b4c5d",
    "target": "server",
}


def frames(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        event = [
            "CLIENT_STREAM_DATA_MIDDLE",
            {"type": 5, "chunkIndex": i % 5, "data": "abcd", **BASE},
        ]
        text = "42/llm," + json.dumps(event, separators=(",", ":"))
        out.append(Frame(Opcode.TEXT, text.encode()).serialize(mask=True))
    return out


class Sink:
    """Counts parsed frames; resolves once all have arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = asyncio.get_running_loop().create_future()
        self.started = 0.0

    def got(self, n: int = 1) -> None:
        if self.count == 0:
            self.started = time.thread_time()
        self.count += n
        if self.count >= self.expected and not self.done.done():
            self.done.set_result(time.thread_time() - self.started)


class WebsocketsServer(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.conn = ServerProtocol(max_size=2**22)
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        n = 0
        for event in conn.events_received():
            if isinstance(event, Frame):
                event.data.decode()  # type: ignore[union-attr]
                n += 1
            else:  # the handshake request
                conn.send_response(conn.accept(event))  # type: ignore[arg-type]
        out = conn.data_to_send()
        if out:
            self.transport.write(b"".join(out))
        if n:
            self.sink.got(n)


async def serve_websockets(sink: Sink) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: WebsocketsServer(sink), "127.0.0.1", 0)


class AiohttpServer(asyncio.Protocol):
    """The handshake answered by hand, then every read to aiohttp's reader,
    whose queue counts messages (as realtime/frames_in.py's Inbound)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.head = b""
        self.reader: Any = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.reader is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            self.reader = WebSocketReader(Counter(self), 2**22, False, True)
            data = self.head.split(b"\r\n\r\n", 1)[1]
        self.reader.feed_data(data)


class Counter(aiohttp_reader.WebSocketDataQueue):
    def __init__(self, server: AiohttpServer) -> None:
        super().__init__(cast(Any, server), 2**30, loop=asyncio.get_running_loop())
        self.sink = server.sink

    def feed_data(self, data: Any, size: int) -> None:
        self.sink.got()


async def serve_aiohttp(sink: Sink) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: AiohttpServer(sink), "127.0.0.1", 0)


async def serve_picows(sink: Sink) -> Any:
    import picows  # type: ignore[import-not-found, unused-ignore]

    class Listener(picows.WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            frame.get_payload_as_utf8_text()
            sink.got()

    return await picows.ws_create_server(lambda request: Listener(), "127.0.0.1", 0)


def client(port: int, wire: list[bytes], batch: int) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        for i in range(0, len(wire), batch):
            sock.sendall(b"".join(wire[i : i + batch]))
        sock.recv(1)  # held open until the server has counted everything


async def measure(kind: str, wire: list[bytes], batch: int) -> float:
    sink = Sink(len(wire))
    serve = {"picows": serve_picows, "aiohttp": serve_aiohttp}.get(kind, serve_websockets)
    server = await serve(sink)
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=client, args=(port, wire, batch), daemon=True)
    thread.start()
    seconds = float(await asyncio.wait_for(sink.done, 120))
    server.close()
    return seconds / len(wire) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    wire = frames(args.frames)
    kinds = ["websockets", "aiohttp"]
    try:
        import picows  # type: ignore[import-not-found, unused-ignore]  # noqa: F401

        kinds.append("picows")
    except ImportError:
        print("picows is not installed: websockets and aiohttp only")
    for kind in kinds:
        best = min([await measure(kind, wire, args.batch) for _ in range(args.runs)])
        print(f"{kind}: {best:.2f} µs of loop-thread CPU per frame ({args.batch} per write)")


if __name__ == "__main__":
    asyncio.run(main())
