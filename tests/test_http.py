"""HTTP surface: static mounts, root page, 404, traversal, health, metrics."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin
from tests.helpers.client import auth
from tests.helpers.rawhttp import raw_get

SECRET = "sentinel-4f1c0ffee"


async def test_health_and_readiness(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        live = await http.get("/healthz")
        assert live.status_code == 200 and live.json()["status"] == "ok"
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        await server.app.store.close()  # the store goes away: not ready, still alive
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200
        await server.app.store.open()


async def test_metrics_count_connections_and_events(server, peers):
    key = await server.client("alice")
    peer = peers()
    await peer.open("/llm", auth("alice", key))
    await peer.call("/llm", "NO_SUCH_EVENT", {})
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
    assert 'newage_connections{namespace="/llm"} 1.0' in text
    assert 'newage_events_in_total{namespace="/llm"} 1.0' in text
    assert "newage_sessions 1.0" in text
    assert "newage_handler_seconds_bucket" in text


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/public/socket.io.js", "text/javascript"),
        ("/public/socket.io.esm.min.js", "text/javascript"),
        ("/socket.io/socket.io.js", "text/javascript"),
        ("/socket.io/socket.io.min.js", "text/javascript"),
        ("/public/socket.io-client.LICENSE", None),
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/lib/constants.js", "text/javascript"),
        ("/dist/newage-client.js", "text/javascript"),
        ("/exampleClient/", "text/html"),
    ],
)
async def test_static_files(server, path, mime):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(path)
    assert response.status_code == 200
    if mime:
        assert response.headers["content-type"].startswith(mime)
    if path.endswith("socket.io.js"):
        assert "Socket.IO v4" in response.text[:200]


async def test_unknown_paths_are_404_not_found(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        for path in ("/nope", "/public/nope.js", "/lib/", "/api/x"):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert response.text == "Not Found"


def plant_secrets(data: Path) -> None:
    (data / "SECRET.txt").write_text(SECRET)
    (data / "settings" / f"{SECRET}.txt").write_text(SECRET)
    (data / "logs" / "combined.log").open("a").write(SECRET + "\n")


TRAVERSALS = [
    "/public/../settings/server_settings.json",
    "/public/../../../SECRET.txt",
    "/public/%2e%2e/%2e%2e/%2e%2e/SECRET.txt",
    "/public/%2E%2E%2F%2E%2E%2Fapp.py",
    "/public/%252e%252e/%252e%252e/SECRET.txt",
    "/public/..%2f..%2f..%2fnewage.db",
    "/public/..\\..\\..\\newage.db",
    "/public/%5c..%5c..%5cnewage.db",
    "/public//etc/passwd",
    "/public/%2fetc%2fpasswd",
    "/lib/....//....//newage.db",
    "/public/..;/..;/app.py",
    "/public/.%2e/.%2e/app.py",
    "/exampleClient/%c0%ae%c0%ae/%c0%ae%c0%ae/app.py",
    "/dist/..%00/app.py",
    "/index.html/../../app.py",
    "/socket.io/../../SECRET.txt",
    "/public/%2e%2e%5c%2e%2e%5capp.py",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/public/../__init__.py",
    "/files/../SECRET.txt",
    "/m/../../SECRET.txt",
    "/m/%2e%2e/%2e%2e/settings/server_settings.json",
    "/m/escape/server_settings.json",
    "/m/escape-file",
    "/m/.hidden",
]


async def test_traversal_never_leaks_a_byte(server):
    data = server.data_dir
    plant_secrets(data)
    files = data / "files"
    (files / "public").mkdir(parents=True, exist_ok=True)
    (files / "public" / "ok.txt").write_text("fine")
    (files / "public" / ".hidden").write_text(SECRET)
    os.symlink(data / "settings", files / "public" / "escape")
    os.symlink(data / "SECRET.txt", files / "public" / "escape-file")
    server.app.static_mappings.set("/m", "public")
    # a real key hash now sits in the database, for the "$2b$" leak check below
    await server.client("SillyTavern-7000", ClientKind.SILLYTAVERN)
    status, body = await raw_get(server.port, "/m/ok.txt")
    assert (status, body) == (200, b"fine")
    for target in TRAVERSALS:
        status, body = await raw_get(server.port, target)
        assert status in (400, 404), (target, status, body[:100])
        for leak in (SECRET.encode(), b"$2b$", b"serverPort", b"SQLite format", b"import "):
            assert leak not in body, (target, leak)


async def test_dotfiles_are_not_served(server, peers):
    site = server.data_dir / "files" / "site"
    (site / ".git").mkdir(parents=True)
    (site / "sub").mkdir()
    (site / "ok.txt").write_text("fine")
    (site / "sub" / "ok.txt").write_text("fine too")
    for hidden in (".env", ".git/config", "sub/.hidden"):
        (site / hidden).write_text(SECRET)
    boss = await admin(server, peers, namespaces=("/function_call",))
    ack = await boss.call(
        "/function_call",
        "FUNCTION_CALL",
        {
            "requestId": "map",
            "functionName": "addStaticResources",
            "target": "server",
            "args": [{"/site": "site"}],
        },
    )
    assert ack["result"] == {
        "success": True,
        "results": [{"urlPath": "/site", "status": "success"}],
    }
    # the files beside them are served, so the 404s below are the dotfile rule
    assert await raw_get(server.port, "/site/ok.txt") == (200, b"fine")
    assert await raw_get(server.port, "/site/sub/ok.txt") == (200, b"fine too")
    for target in ("/site/.env", "/site/.git/config", "/site/sub/.hidden", "/site/%2eenv"):
        status, body = await raw_get(server.port, target)
        assert status == 404 and SECRET.encode() not in body, (target, status, body[:100])
