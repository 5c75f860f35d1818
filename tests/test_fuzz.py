"""Arbitrary payloads at every event of every namespace (hypothesis).

The server must answer each one exactly once with an object, never crash,
and never drop the caller or anyone else. The server runs in its own thread
and loop; hypothesis drives it synchronously.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from newage.app import NAMESPACES
from newage.protocol.names import ClientKind
from tests.helpers.actors import connect
from tests.helpers.client import Peer
from tests.helpers.server import RunningServer
from tests.helpers.wait import settle

EVENTS = sorted({(ns.value, event) for ns, cls in NAMESPACES.items() for event in cls.routes})
# GET_ROOMS on /clients answers a bare array for the extension (documented)
ARRAY_ACKS = {("/clients", "GET_ROOMS"), ("/clients", "getRooms")}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)
# payloads shaped like the real ones, with wrong or odd values
field_names = st.sampled_from(
    [
        "roomName",
        "identity",
        "clientId",
        "targetClientId",
        "targetIdentity",
        "role",
        "mode",
        "policy",
        "requestId",
        "message",
        "target",
        "targetRoom",
        "messageId",
        "messageIds",
        "updatedFields",
        "streamId",
        "outputId",
        "chunkIndex",
        "data",
        "type",
        "functionName",
        "args",
        "filename",
        "level",
        "page",
        "pageSize",
        "duration",
        "extensions",
        "clientRoom",
        "since",
        "password",
        "final",
    ]
)
shaped = st.dictionaries(field_names, json_values, max_size=6)
payloads = st.one_of(st.just(None), json_values, shaped)


class Background:
    """A server and admin/bystander clients living in their own event loop."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = RunningServer(data_dir, {"networkSafe": True})
        self.peers: list[Peer] = []

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def peer(self, **kw: Any) -> Peer:
        peer = Peer(self.server.url, **kw)
        self.peers.append(peer)
        return peer

    def stop(self) -> None:
        async def shutdown() -> None:
            for peer in self.peers:
                await peer.close()
            await self.server.stop()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        self.run(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


EVERY = ("/", "/auth", "/llm", "/function_call", "/rooms", "/clients", "/debug")
# who opens what: /debug is for admins and extensions only
OPENED = {
    "admin": EVERY,
    "client": tuple(ns for ns in EVERY if ns != "/debug"),
    "extension": tuple(ns for ns in EVERY if ns != "/debug"),  # /debug is for admins
    "bystander": ("/", "/llm", "/rooms"),
}
IDS = {
    "admin": ("fuzz-admin-7c1e", ClientKind.MONITOR),
    "client": ("fuzz-client-7c1e", ClientKind.CLIENT),
    "extension": ("SillyTavern-fuzz-7c1e", ClientKind.SILLYTAVERN),
    "bystander": ("fuzz-bystander-7c1e", ClientKind.CLIENT),
}
ACTORS = ["admin", "client", "extension"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    bg = Background(tmp_path_factory.mktemp("fuzz"))
    bg.run(bg.server.start())
    peers = {
        name: bg.run(connect(bg.server, bg.peer, client_id, kind, namespaces=OPENED[name]))
        for name, (client_id, kind) in IDS.items()
    }
    yield {"bg": bg, "peers": peers}
    bg.stop()


def assert_still_there(world: dict[str, Any], name: str) -> None:
    """``name`` is connected on every namespace it opened, and answered on each."""
    peer = world["peers"][name]
    for namespace in OPENED[name]:
        assert peer.connected(namespace), (name, namespace)
        world["bg"].run(settle(peer, namespace))


def test_any_payload_gets_one_clear_answer(world):
    bg = world["bg"]

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(actor=st.sampled_from(ACTORS), target=st.sampled_from(EVENTS), payload=payloads)
    def one_call(actor, target, payload):
        namespace, event = target
        assume(namespace in OPENED[actor])
        peer = world["peers"][actor]
        if (
            event == "FUNCTION_CALL"
            and isinstance(payload, dict)
            and payload.get("target") not in (None, "server")
        ):
            payload["target"] = "server"  # forwarding to nobody would only wait for the timeout
        ack = bg.run(peer.call(namespace, event, payload, timeout=10))
        # a refusal closes nothing: a DISCONNECT sent before the ack has arrived by now
        for opened in OPENED[actor]:
            assert peer.connected(opened), (target, payload, opened)
        if target in ARRAY_ACKS:
            assert isinstance(ack, list)
            return
        assert isinstance(ack, dict), (target, payload, ack)
        assert ack.get("status") in ("ok", "error", "warning") or "success" in ack, (
            target,
            payload,
            ack,
        )
        if ack.get("status") == "error":
            # FUNCTION_CALL keeps the original's {error: {message}} shape
            message = ack["error"]["message"] if event == "FUNCTION_CALL" else ack.get("message")
            assert isinstance(message, str) and message, ack

    one_call()
    # afterwards, in the same test (a separate one could run on another
    # xdist worker, with a world nobody fuzzed): the server is alive and
    # nobody was dropped, the bystander included
    assert httpx.get(f"{bg.server.url}/healthz").status_code == 200
    for name in OPENED:
        assert_still_there(world, name)
    ack = bg.run(
        world["peers"]["bystander"].call(
            "/llm", "message", {"type": 0, "data": "Connection active?"}
        )
    )
    assert ack["status"] == "ok"
