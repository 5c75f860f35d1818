"""HTTP surface: static mounts, the monitor page, health, metrics, 404.

The top-level :class:`Router` sends the Socket.IO path straight to
python-engineio (no Starlette middleware on the hot path) and everything
else to Starlette.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from newage.domain.functions.static import BUILTIN_MOUNTS
from newage.errors import NewAgeError
from newage.http.openai import build_openai_app
from newage.http.static import WEB_ROOT, SafeStaticFiles, mapped_response

if TYPE_CHECKING:
    from newage.services import Services

CLIENT_BUNDLES = {
    "socket.io.js": "socket.io.js",
    "socket.io.min.js": "socket.io.min.js",
    "socket.io.esm.min.js": "socket.io.esm.min.js",
}


def build_http_app(services: Services) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "version": services.info.version,
                "uptimeSeconds": services.info.uptime(),
                "socketIOPath": services.live.current.socket_io_path,
            }
        )

    async def readyz(_: Request) -> Response:
        checks = await services.ready()
        if all(checks.values()):
            return JSONResponse({"status": "ok", "checks": checks})
        down = ", ".join(name for name, ok in checks.items() if not ok)
        return JSONResponse(
            {"status": "error", "message": f"unreachable: {down}", "checks": checks},
            status_code=503,
        )

    async def metrics(_: Request) -> Response:
        services.refresh_gauges()
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def root(_: Request) -> Response:
        # The page's own policy is a <meta> CSP, where frame-ancestors is
        # ignored; both policies are enforced, so this header only adds
        # "never in a frame" (clickjacking) and need not repeat the meta.
        return FileResponse(
            WEB_ROOT / "monitor" / "index.html",
            headers={"Content-Security-Policy": "frame-ancestors 'none'"},
        )

    async def not_found(request: Request, _: Exception) -> Response:
        mapped = mapped_response(services.static_mappings, request.url.path)
        if mapped is not None and request.method in {"GET", "HEAD"}:
            return mapped
        return PlainTextResponse("Not Found", status_code=404)

    async def newage_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, NewAgeError)
        return JSONResponse(exc.to_ack(), status_code=exc.http_status)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await services.startup()
        try:
            yield
        finally:
            await services.shutdown()

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/", root),
        Route("/index.html", root),
        Mount("/v1", app=build_openai_app(services)),
    ]
    routes += [
        Mount(
            path,
            app=SafeStaticFiles(directory=WEB_ROOT / path.strip("/"), html=True, check_dir=False),
        )
        for path in BUILTIN_MOUNTS
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, NewAgeError: newage_error},
    )


class AsgiRouter:
    """Socket.IO path -> engineio; ``<path>/socket.io.js`` -> vendored client;
    everything else -> Starlette (which also owns the lifespan)."""

    def __init__(self, sio_app: ASGIApp, http_app: ASGIApp, sio_path: str) -> None:
        self.sio_app = sio_app
        self.http_app = http_app
        self.prefix = sio_path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                bundle = CLIENT_BUNDLES.get(path[len(self.prefix) + 1 :])
                if bundle is not None and scope["type"] == "http":
                    response = FileResponse(WEB_ROOT / "public" / bundle)
                    await response(scope, receive, send)
                    return
                await self.sio_app(scope, receive, send)
                return
        await self.http_app(scope, receive, send)
