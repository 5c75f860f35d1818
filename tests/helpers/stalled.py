"""A websocket client that stops reading: the slow consumer of the outbound
budget tests and bench/slow_consumer.py.

It speaks just enough websocket and Engine.IO/Socket.IO by hand to open one
namespace, with a tiny receive buffer, then never reads again, so what the
server sends piles up on the server's side.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

TCP_ESTABLISHED = 1


def _frame(text: str) -> bytes:
    """One masked text frame, as a client must send."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class StalledReader:
    def __init__(self, port: int, path: str = "/socket.io/") -> None:
        self.port = port
        self.path = path
        self.sock: socket.socket | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, namespace: str, auth: dict[str, Any], timeout: float = 10) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        # a small stream buffer: the transport stops reading almost at once
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        self.sock, self.writer = sock, writer
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {self.path}?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        seen = b""

        async def until(marker: bytes) -> None:
            nonlocal seen
            while marker not in seen:
                chunk = await reader.read(1024)
                if not chunk:
                    raise ConnectionError(f"closed before {marker!r}: {seen[-200:]!r}")
                seen += chunk

        await asyncio.wait_for(until(b'0{"sid"'), timeout)
        writer.write(_frame(f"40{namespace},{json.dumps(auth)}"))
        await asyncio.wait_for(until(f"40{namespace},".encode()), timeout)
        if f"44{namespace},".encode() in seen:
            raise ConnectionError(f"refused: {seen[-300:]!r}")
        # from here on nothing is read

    def established(self) -> bool:
        """Still open as far as the kernel knows (the server has not closed it)."""
        assert self.sock is not None
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        return info[0] == TCP_ESTABLISHED

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None
