"""The ASGI server is a setting (asgiServer, uvicornWs): every choice relays a
stream in order to a websocket client and to one that starts on polling and
upgrades. The whole suite runs on a choice with NEWAGE_ASGI_SERVER=granian."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from tests.helpers.actors import connect, fake_extension
from tests.helpers.server import RunningServer

TOKENS = ["Hello", ", wor", "ld! ", "How are you", "?"]

CHOICES: list[Any] = [
    {"asgiServer": "uvicorn", "uvicornWs": "websockets-sansio"},
    {"asgiServer": "uvicorn", "uvicornWs": "websockets"},
    {"asgiServer": "uvicorn", "uvicornWs": "wsproto"},
    {"asgiServer": "uvicorn", "uvicornWs": "newage"},
    pytest.param(
        {"asgiServer": "granian"},
        marks=pytest.mark.skipif(
            importlib.util.find_spec("granian") is None, reason="the granian extra"
        ),
    ),
]


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
@pytest.mark.parametrize("server_settings", CHOICES)
async def test_a_stream_is_relayed_in_order(server, peers, server_settings, transports):
    assert server.app is not None
    assert server.app.settings.asgi_server == server_settings["asgiServer"]
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web", peer_options={"transports": transports})
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"})
    assert ack["status"] == "ok", ack
    await ext.next_request()
    await ext.stream(TOKENS, final=True)
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=5)
    chunks = web.received("/llm", "SERVER_STREAM_DATA")
    assert "".join(c["data"] for c in chunks) == "".join(TOKENS) == end["data"]
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    if transports[0] == "polling":
        assert web.sio.transport() == "websocket"  # the upgrade happened


async def test_granian_without_the_extra_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_granian(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("granian"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_granian)
    server = RunningServer(tmp_path / "data", {"asgiServer": "granian"})
    with pytest.raises(Exception, match="granian is not installed"):
        await server.start()
