"""Browser origins: a page from an origin that is not allowed can neither
reach Socket.IO (polling or websocket) nor the HTTP API; loopback pages and
configured origins can; requests without Origin are unaffected."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright

from newage.protocol.names import ClientKind
from tests.helpers.browser import ARGS, CHROMIUM
from tests.helpers.client import Peer, Refused, auth
from tests.helpers.server import RunningServer

EVIL = "http://evil.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


async def get(server: RunningServer, path: str, origin: str | None) -> httpx.Response:
    headers = {"Origin": origin} if origin is not None else {}
    async with httpx.AsyncClient() as http:
        return await http.get(server.url + path, headers=headers)


@pytest.mark.parametrize("path", ["/healthz", "/", "/metrics", HANDSHAKE, "/no/such/route"])
async def test_a_foreign_origin_is_refused_everywhere(server: RunningServer, path: str) -> None:
    response = await get(server, path, EVIL)
    assert response.status_code == 403
    assert response.json() == {"status": "error", "message": "Origin not allowed."}
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [None, "http://localhost:8000", "http://127.0.0.1:1", "http://[::1]:9", "https://localhost"],
)
async def test_loopback_origins_and_no_origin_pass(server: RunningServer, origin: str | None):
    assert (await get(server, "/healthz", origin)).status_code == 200
    response = await get(server, HANDSHAKE, origin)
    assert response.status_code == 200 and '"sid"' in response.text
    if origin is not None:
        assert response.headers["access-control-allow-origin"] == origin


async def test_the_servers_own_origin_passes(server: RunningServer) -> None:
    assert (await get(server, "/healthz", server.url)).status_code == 200


@pytest.mark.parametrize(
    "origin", ["null", "file://", "http://localhost.evil.example", "http://127.0.0.2:8000"]
)
async def test_lookalikes_are_refused(server: RunningServer, origin: str) -> None:
    assert (await get(server, "/healthz", origin)).status_code == 403


@pytest.mark.parametrize(
    "server_settings",
    [{"corsOrigins": ["https://app.example", "http://tools.example:*"]}],
)
async def test_configured_origins_are_added(server: RunningServer) -> None:
    for origin in ("https://app.example", "http://tools.example:8080", "http://localhost:1"):
        assert (await get(server, "/healthz", origin)).status_code == 200, origin
    for origin in ("http://app.example", "https://app.example:444", "https://tools.example"):
        assert (await get(server, "/healthz", origin)).status_code == 403, origin


@pytest.mark.parametrize("server_settings", [{"corsOrigins": "*"}])
async def test_star_is_an_explicit_choice(server: RunningServer) -> None:
    assert (await get(server, "/healthz", EVIL)).status_code == 200


async def test_websocket_handshake_with_a_foreign_origin_is_refused(server: RunningServer):
    key = await server.client("alice")
    hostile = Peer(server.url, headers={"Origin": EVIL})
    with pytest.raises(Refused):  # the websocket handshake itself fails
        await hostile.open("/", auth("alice", key))
    await hostile.close()
    friendly = Peer(server.url, headers={"Origin": "http://localhost:8000"})
    await friendly.open("/", auth("alice", key))
    await friendly.close()


# ---------------------------------------------------------------- Chromium
PAGE = """<!doctype html><meta charset=utf-8><title>probe</title>
<script src="{server}/socket.io/socket.io.js"></script>
<script>
window.probe = (transport) => new Promise((resolve) => {{
  const socket = io("{server}/", {{
    transports: [transport], reconnection: false, timeout: 5000,
    auth: {auth},
  }});
  socket.on("connect", () => {{ socket.close(); resolve("connected"); }});
  socket.on("connect_error", (err) => {{ socket.close(); resolve("error: " + err.message); }});
}});
</script>"""


@contextlib.contextmanager
def page_server(host: str, body: str) -> Iterator[int]:
    """A tiny HTTP server for the probe page, on its own origin."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer((host, 0), Handler)
    thread = Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.mark.browser
async def test_chromium_page_from_a_foreign_origin_cannot_connect(server: RunningServer):
    key = await server.client("alice", ClientKind.CLIENT)
    body = PAGE.format(server=server.url, auth=json.dumps(auth("alice", key)))
    with page_server("127.0.0.2", body) as evil_port, page_server("127.0.0.1", body) as ok_port:
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.2:{evil_port}/")
            await page.wait_for_function("typeof window.probe === 'function'")
            for transport in ("polling", "websocket"):
                outcome = await page.evaluate("(t) => window.probe(t)", transport)
                assert outcome.startswith("error"), (transport, outcome)

            page = await browser.new_page()
            await page.goto(f"http://localhost:{ok_port}/")
            await page.wait_for_function("typeof window.probe === 'function'")
            for transport in ("polling", "websocket"):
                assert await page.evaluate("(t) => window.probe(t)", transport) == "connected"
