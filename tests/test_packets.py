"""Packets python-socketio cannot decode, binary attachments and a second
CONNECT to an open namespace: each gets a clear error, and the connection
keeps working."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets
from engineio import packet as eio_packet
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet

from newage.realtime.outbox import event_packets
from newage.realtime.server import OrjsonJSON
from tests.helpers.actors import connect
from tests.helpers.client import auth

NO_BINARY = "Binary attachments are not supported: send JSON."


class Raw:
    """Engine.IO/Socket.IO spoken by hand over one websocket."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, server, client_id: str, namespace: str = "/llm") -> Raw:
        key = await server.client(client_id)
        url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        raw = cls(await websockets.connect(url, compression=None))
        assert str(await raw.ws.recv()).startswith("0{")
        prefix = "" if namespace == "/" else f"{namespace},"
        await raw.send(f"0{prefix}{json.dumps(auth(client_id, key))}")
        assert (await raw.recv()).startswith(f"0{prefix}{{")
        return raw

    async def send(self, socketio_packet: str | bytes) -> None:
        if isinstance(socketio_packet, bytes):
            await self.ws.send(socketio_packet)
        else:
            await self.ws.send("4" + socketio_packet)

    async def recv(self) -> str:
        """The next Socket.IO packet (Engine.IO pings answered on the way)."""
        while True:
            msg = str(await self.ws.recv())
            if msg == "2":
                await self.ws.send("3")
                continue
            assert msg.startswith("4"), msg
            return msg[1:]

    async def ack(self, ack_id: int, namespace: str = "/llm") -> Any:
        msg = await self.recv()
        head = f"3{namespace},{ack_id}"
        assert msg.startswith(head), msg
        return json.loads(msg[len(head) :])[0]

    async def event(self, namespace: str = "/llm") -> tuple[str, Any]:
        msg = await self.recv()
        head = f"2{namespace},"
        assert msg.startswith(head), msg
        name, data = json.loads(msg[len(head) :])
        return name, data

    async def still_works(self, ack_id: int = 99) -> None:
        await self.send(f'2/llm,{ack_id}["UNKNOWN_EVENT",{{}}]')
        assert (await self.ack(ack_id))["message"].startswith("Unknown event")


@pytest.mark.parametrize(
    "bad",
    ['2/llm,7["LLM_REQUEST",{"a":', "2/llm,7{not json", '2/llm,7["x"]]'],
)
async def test_an_undecodable_event_with_an_ack_id_is_answered(server, bad):
    raw = await Raw.open(server, "alice")
    await raw.send(bad)
    ack = await raw.ack(7)
    assert ack["status"] == "error" and ack["message"] == "Undecodable packet."
    assert ack["code"] == "bad_request"
    await raw.still_works()


@pytest.mark.parametrize("bad", ['2/llm,["LLM_REQUEST",{', "9/llm,", "7/llm,[]", "x/llm,"])
async def test_an_undecodable_packet_without_an_ack_id_gets_an_error_event(server, bad):
    raw = await Raw.open(server, "alice")
    await raw.send(bad)
    name, data = await raw.event()
    assert name == "ERROR" and data["message"] == "Undecodable packet."
    await raw.still_works()


async def test_a_binary_event_is_refused_and_its_attachments_skipped(server):
    raw = await Raw.open(server, "alice")
    await raw.send(
        '52-/llm,9["LLM_REQUEST",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    )
    await raw.send(b"\x00\x01")
    await raw.send(b"\x02")
    ack = await raw.ack(9)
    assert ack["status"] == "error" and ack["message"] == NO_BINARY
    await raw.still_works()
    # without an ack id, and a stray binary frame: ERROR events
    await raw.send('51-/llm,["LLM_REQUEST",{"_placeholder":true,"num":0}]')
    await raw.send(b"\x00")
    assert await raw.event() == ("ERROR", {**ack})


async def test_a_stray_binary_frame_gets_an_error_on_the_default_namespace(server):
    raw = await Raw.open(server, "alice", namespace="/")
    await raw.send(b"\x00\x01")
    msg = await raw.recv()
    assert msg.startswith("2[") and json.loads(msg[1:])[1]["message"] == NO_BINARY


async def test_python_socketio_binary_payload_gets_a_clear_ack(server, peers):
    peer = await connect(server, peers, "alice", namespaces=("/llm",))
    ack = await peer.call("/llm", "LLM_REQUEST", {"message": b"bytes", "targetRoom": "alice"})
    assert ack["status"] == "error" and ack["message"] == NO_BINARY
    assert peer.connected("/llm")


async def test_a_second_connect_to_an_open_namespace_keeps_the_socket(server, peers):
    peer = await connect(server, peers, "alice", namespaces=("/llm", "/rooms"))
    key = server.keys["alice"]
    await peer.sio._send_packet(
        peer.sio.packet_class(packet.CONNECT, data=auth("alice", key), namespace="/llm")
    )
    error = await peer.next("/llm", "ERROR")
    assert error["message"] == "Already connected to /llm on this connection."
    # the working socket is untouched on both sides
    assert peer.connected("/llm")
    ack = await peer.call("/llm", "UNKNOWN_EVENT", {})
    assert ack["message"].startswith("Unknown event")
    assert server.app is not None and "alice" in server.app.presence.sessions


async def test_a_second_connect_with_another_identity_changes_nothing(server):
    raw = await Raw.open(server, "alice")
    bob_key = await server.client("bob")
    await raw.send(f"0/llm,{json.dumps(auth('bob', bob_key))}")
    name, data = await raw.event()
    assert name == "ERROR" and data["message"].startswith("Already connected")
    assert server.app is not None and "bob" not in server.app.presence.sessions
    await raw.still_works()


# ---------------------------------------------------------------- outbound encoding
class ServerPacket(packet.Packet):
    """python-socketio's packet with the server's JSON hook, as the server has it."""

    json = OrjsonJSON


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),  # lone surrogates included: orjson refuses them
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    namespace=st.sampled_from(["/", "/llm", "/rooms", "/function_call"]),
    event=st.text(min_size=1, max_size=20),
    data=json_values | st.binary(max_size=8) | st.lists(st.binary(max_size=4), max_size=2),
)
def test_the_outbox_encodes_events_as_python_socketio_does(namespace, event, data):
    # the outbox writes EVENT packets itself (realtime/outbox.py); what goes
    # on the wire must stay exactly python-socketio's encoding, binary
    # attachments and orjson's refusals included
    theirs = ServerPacket(packet.EVENT, namespace=namespace, data=[event, data]).encode()
    theirs = theirs if isinstance(theirs, list) else [theirs]
    ours = [p.encode() for p in event_packets(ServerPacket, namespace, event, data)]
    assert ours == [eio_packet.Packet(eio_packet.MESSAGE, t).encode() for t in theirs]
