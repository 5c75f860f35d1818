"""The stand-in SillyTavern page (tests/sillytavern/) with the real
``extension/`` files where SillyTavern serves a user's third-party
extensions, on an ephemeral loopback port."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "tests" / "sillytavern"
EXTENSION = ROOT / "extension"
EXTENSION_URL = "/scripts/extensions/third-party/newage/"


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith(EXTENSION_URL):
            base, rest = EXTENSION, path[len(EXTENSION_URL) :]
        else:
            base, rest = PAGE, path.lstrip("/") or "index.html"
        target = (base / rest).resolve()
        if not target.is_relative_to(base.resolve()):
            return str(PAGE / "missing")
        return str(target)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StandIn:
    """``with StandIn() as st: st.url``; its port names the default clientId."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(PAGE)))
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.client_id = f"SillyTavern-{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
