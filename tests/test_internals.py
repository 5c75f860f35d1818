"""The private library internals we rely on are still there, and the fast
paths built on them are actually in use (an upgrade could otherwise turn
them off silently: everything would still work, only slower)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from engineio import async_socket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from newage.realtime import frames_in, internals
from newage.realtime.direct_ws import DirectProtocol
from newage.realtime.engine import LeanQueue, LeanSocket
from newage.realtime.server import NewAgeServer
from newage.settings import Settings
from tests.helpers.actors import connect, fake_extension
from tests.helpers.client import auth
from tests.helpers.wait import settle

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("python-socketio", "python-engineio", "uvicorn", "aiohttp")


def pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for spec in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([0-9][^,;\s]*)", spec)
        if match:
            found[match[1]] = match[2]
    return found


def locked() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, sep, ver = line.partition("==")
        if sep:
            found[name.strip().lower().replace("_", "-")] = ver.strip()
    return found


def test_the_realtime_libraries_are_pinned_and_installed_at_the_pins():
    pinned = pins()
    lock = locked()
    for name in PINNED:
        assert name in pinned, f"{name} must be pinned exactly (==) in pyproject.toml"
        assert version(name) == pinned[name], (name, version(name), pinned[name])
        assert lock.get(name) == pinned[name], f"requirements.lock disagrees on {name}"


def test_every_declared_dependency_is_locked():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d)[0].lower().replace("_", "-") for d in declared}
    missing = sorted(names - set(locked()))
    assert not missing, f"not in requirements.lock (run `make lock`): {missing}"


def test_the_lock_matches_what_is_installed():
    # the lock is what CI installs; it must be what this suite ran against
    drift = {}
    for name, ver in locked().items():
        try:
            installed = version(name)
        except Exception:
            installed = None
        if installed != ver:
            drift[name] = (ver, installed)
    assert not drift, f"requirements.lock is stale (locked, installed): {drift}"


def resolve(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ImportError:
        return getattr(importlib.import_module(module), attr)


@pytest.fixture(scope="module")
def instances() -> dict[str, Any]:
    """One live object per owner, for the names that exist on instances only."""
    sio = NewAgeServer(Settings, lambda origin, environ: True)
    config = uvicorn.Config(app=lambda scope, receive, send: None, ws="websockets-sansio")
    loop = asyncio.new_event_loop()
    protocol = WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=loop)
    loop.close()
    return {
        internals.UVICORN_WS: protocol,
        internals.WS_PROTOCOL: protocol.conn,
        internals.SIO_SERVER: sio,
        internals.SIO_MANAGER: sio.manager,
        internals.ENGINE_SERVER: sio.eio,
        internals.ENGINE_SOCKET: async_socket.AsyncSocket(sio.eio, "probe"),
    }


@pytest.mark.parametrize("relied", internals.RELIED, ids=lambda r: f"{r.owner}.{r.name}")
def test_every_relied_on_name_is_there_as_expected(relied, instances):
    owner = resolve(relied.owner)
    where = f"{relied.owner}.{relied.name} ({relied.why})"
    if relied.kind == "class":
        assert inspect.isclass(owner) and owner.__name__ == relied.name, where
        assert "__slots__" not in vars(owner), f"{where}: __class__ swap needs no slots"
        return
    if relied.kind == "attribute":
        holder = instances.get(relied.owner, owner)
        assert hasattr(holder, relied.name), f"missing attribute: {where}"
        return
    target = getattr(owner, relied.name, None)
    assert target is not None, f"missing: {where}"
    if relied.kind == "key":
        assert set(relied.params or ()) <= set(target), f"missing keys: {where}"
        return
    assert callable(target), where
    is_coroutine = inspect.iscoroutinefunction(target)
    assert is_coroutine == (relied.kind == "coroutine"), f"sync/async changed: {where}"
    params = list(inspect.signature(target).parameters)
    if params and params[0] == "self":
        params = params[1:]
    assert tuple(params) == relied.params, f"parameters changed to {params}: {where}"
    if relied.source is not None:
        assert internals.source_digest(target) == relied.source, (
            f"upstream code we copied or replaced changed: review {where}"
        )


def test_the_lean_socket_is_the_one_overriding_what_is_listed():
    # what LeanSocket replaces is listed, so a renamed upstream method would
    # leave ours unused and be caught above
    replaced = {r.name for r in internals.RELIED if r.owner == internals.ENGINE_SOCKET}
    ours = {name for name in vars(LeanSocket) if callable(vars(LeanSocket)[name])}
    assert {"_websocket_handler", "poll", "schedule_ping"} <= ours & replaced


def test_aiohttp_reader_is_the_compiled_one():
    # its pure-Python fallback is slower than websockets' parser: the lane
    # would be correct on it, and slower than without it
    assert frames_in.COMPILED


def test_the_direct_protocol_overrides_what_is_listed():
    replaced = {r.name for r in internals.RELIED if r.owner == internals.UVICORN_WS}
    ours = {name for name in vars(DirectProtocol) if callable(vars(DirectProtocol)[name])}
    assert {"handle_events", "send_receive_event_to_app", "resume_writing"} <= ours & replaced


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"], ["polling"]])
async def test_every_connection_gets_the_lean_socket_and_queue(server, peers, transports):
    key = await server.client("web")
    peer = peers(transports=transports)
    await peer.open("/llm", auth("web", key))
    await settle(peer, "/llm")
    sockets = internals.engine_sockets(server.app.sio)
    assert sockets
    for sock in sockets:
        assert type(sock) is LeanSocket
        assert isinstance(sock.queue, LeanQueue) and sock.queue.budget is not None


async def test_stream_frames_take_the_fast_path(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    fast = server.app.sio.ns("/llm").fast
    assert server.app.sio.eio.newage_fast_frame == fast.handle
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"})
    assert ack["status"] == "ok", ack
    await ext.next_request()
    before = fast.handled
    tokens = ["Hello", " there", "!"]
    await ext.stream(tokens)
    await settle(ext.peer, "/llm")
    # START, five data sub-chunks and END per token, every one on the fast path
    assert fast.handled - before == 7 * len(tokens)
    server.app.refresh_gauges()  # flushing into Prometheus keeps the count
    assert fast.handled - before == 7 * len(tokens)
    # a frame the fast path does not accept goes the full way and is not counted
    await ext.peer.emit("/llm", "CLIENT_STREAM_START", {"type": 1, "streamId": ""})
    await settle(ext.peer, "/llm")
    assert fast.handled - before == 7 * len(tokens)


async def test_a_plain_client_does_not_take_the_fast_path(server, peers):
    key = await server.client("web")
    peer = peers()
    await peer.open("/llm", auth("web", key))
    fast = server.app.sio.ns("/llm").fast
    before = fast.handled
    frame = {"type": 1, "streamId": "s1", "outputId": "o1", "numStreams": 5}
    await peer.emit("/llm", "CLIENT_STREAM_START", frame)
    await settle(peer, "/llm")
    assert fast.handled == before
