"""How uvicorn runs the app: options shared by ``newage serve`` and the
test servers, and the process limits raised at start."""

from __future__ import annotations

import resource
from typing import Any

from newage.logs import log
from newage.realtime.server import hard_payload_limit
from newage.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    trusted = list(settings.forwarded_allow_ips)
    return {
        "http": "httptools",
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_max_size": hard_payload_limit(settings) + 1024,
        # X-Forwarded-For is believed only from the listed proxies; with none
        # listed it is ignored, so a client cannot pick its own address.
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
    }


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; the new soft limit.

    Every connection is a descriptor: at a typical soft limit of 1024 a flood
    of idle sockets left no room to accept anyone else.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return soft
