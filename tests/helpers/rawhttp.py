"""Raw clients: an HTTP/1.1 GET with the request target sent byte for byte
(no URL normalisation, unlike httpx), for path-traversal tests; an
Engine.IO polling session spoken by hand, for upgrade tests."""

from __future__ import annotations

import asyncio
import json

import httpx


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(
                "latin-1"
            )
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


class PollingSession:
    """An Engine.IO session over HTTP long-polling, spoken by hand (v4), so a
    test can then attempt a websocket upgrade that goes wrong on purpose."""

    def __init__(self, port: int, path: str = "/socket.io/") -> None:
        self.base = f"http://127.0.0.1:{port}{path}?EIO=4&transport=polling"
        self.ws_base = f"ws://127.0.0.1:{port}{path}?EIO=4&transport=websocket"
        self.http = httpx.AsyncClient(timeout=10)
        self.sid = ""

    async def open(self) -> str:
        response = await self.http.get(self.base)
        response.raise_for_status()
        head = response.text.split("\x1e")[0]
        assert head.startswith("0"), head
        self.sid = json.loads(head[1:])["sid"]
        return self.sid

    @property
    def upgrade_url(self) -> str:
        return f"{self.ws_base}&sid={self.sid}"

    async def send(self, *packets: str) -> None:
        response = await self.http.post(f"{self.base}&sid={self.sid}", content="\x1e".join(packets))
        assert response.status_code == 200 and response.text.lower() == "ok", response.text

    async def poll(self) -> list[str]:
        """The packets waiting (a long poll: returns when there are some)."""
        response = await self.http.get(f"{self.base}&sid={self.sid}")
        assert response.status_code == 200, response.text
        return response.text.split("\x1e")

    async def close(self) -> None:
        await self.http.aclose()
