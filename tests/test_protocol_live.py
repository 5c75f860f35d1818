"""What a live server sends matches the outbound types of src/newage/protocol/.

A requester, an admin and an extension, real clients on a real server, go
through rooms, moderation, a streamed and a non-stream answer, a retry, a
resume, history reads, a cancel, a forwarded function call and failures;
then every event each of them received and every ack is validated, strictly
and refusing unknown keys, against its TypedDict. The contract test checks
the same types against docs/protocol.md, so neither side can drift alone.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from typing import Any

import pytest
import typing_extensions
from pydantic import ConfigDict, TypeAdapter, ValidationError

from newage import errors
from newage.protocol import acks, outbound
from newage.protocol.acks import ACKS
from newage.protocol.names import ClientKind
from newage.protocol.outbound import OUTBOUND
from tests.helpers.actors import admin, connect, fake_extension
from tests.helpers.client import auth

STRICT = ConfigDict(extra="forbid", strict=True)
for module in (outbound, acks, errors):  # the types of these modules, nested ones too
    for _, cls in inspect.getmembers(module, typing_extensions.is_typeddict):
        cls.__pydantic_config__ = STRICT  # type: ignore[attr-defined]


def adapter(types: tuple[type, ...]) -> TypeAdapter[Any]:
    return TypeAdapter(types[0] if len(types) == 1 else typing.Union[types])  # noqa: UP007


EVENTS = {event: adapter((cls,)) for event, cls in OUTBOUND.items()}


class Acks:
    """Every ack a test client got, checked at the end against its event's types."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    async def call(self, peer: Any, namespace: str, event: str, *args: Any) -> Any:
        ack = await peer.call(namespace, event, *args)
        self.seen.append((event, ack))
        return ack

    def check(self) -> set[str]:
        for event, ack in self.seen:
            if event == "FUNCTION_CALL":
                types: tuple[type, ...] = (errors.FunctionAck,)
            elif isinstance(ack, dict) and ack.get("status") == "error":
                types = (errors.ErrorAck,)
            else:
                types = ACKS[event]
            try:
                adapter(types).validate_python(ack)
            except ValidationError as exc:
                raise AssertionError(f"ack of {event}: {ack}\n{exc}") from None
        return {event for event, _ in self.seen}


def check_events(*peers: Any) -> set[str]:
    checked = set()
    for peer in peers:
        for (namespace, event), payloads in peer.events.items():
            if event == "disconnect":
                continue
            assert event in EVENTS, f"{event} on {namespace} has no outbound type"
            for payload in payloads:
                try:
                    EVENTS[event].validate_python(payload)
                except ValidationError as exc:
                    raise AssertionError(f"{event} on {namespace}: {payload}\n{exc}") from None
            checked.add(event)
    return checked


@pytest.mark.parametrize(
    "server_settings",
    [dict(heartbeatInterval=200, contextSendDelay=0, streamCoalesceMs=5)],
)
async def test_every_payload_and_ack_matches_its_type(server, peers):
    a = Acks()
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers, namespaces=("/", "/llm", "/rooms", "/clients", "/debug"))
    web = await connect(server, peers, "web", namespaces=("/", "/llm", "/rooms", "/clients"))
    await web.open("/function_call", auth("web", server.keys["web"], clientType="web-app"))

    # a key issued on /auth, then a room with a member, moderated
    await server.trust("SillyTavern-2", ClientKind.SILLYTAVERN)
    st = peers()
    await st.open("/auth", auth("SillyTavern-2", "getKey", clientType="SillyTavern"))
    await st.next("/auth", "CLIENT_KEY_ASSIGNED")
    await a.call(boss, "/rooms", "CREATE_ROOM", {"roomName": "lobby"})
    await a.call(boss, "/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "web", "roomName": "lobby"})
    await a.call(boss, "/rooms", "GET_CLIENTS_IN_ROOM", {"roomName": "lobby"})
    await a.call(boss, "/rooms", "GET_ROOMS")
    await a.call(boss, "/rooms", "GET_ASSIGNMENTS")
    await a.call(boss, "/clients", "GET_CLIENT_LIST")
    await a.call(web, "/clients", "GET_CLIENT_KEY")
    await a.call(
        boss,
        "/rooms",
        "MUTE_MEMBER",
        {"targetIdentity": "web", "roomName": "lobby", "duration": 60},
    )
    await a.call(
        web, "/llm", "LLM_REQUEST", {"requestId": "m1", "message": "x", "targetRoom": "lobby"}
    )
    await a.call(boss, "/rooms", "UNMUTE_MEMBER", {"targetIdentity": "web", "roomName": "lobby"})
    await a.call(
        boss, "/rooms", "SET_ROOM_MESSAGE_REQUEST_MODE", {"roomName": "lobby", "mode": "MasterOnly"}
    )
    await a.call(web, "/llm", "START_TYPING", {"targetRoom": "lobby"})
    await web.emit("/rooms", "CREATE_ROOM", {"roomName": "not-mine"})  # no ack: an ERROR event
    await web.next("/rooms", "ERROR")

    # a streamed answer, its retry, resume and history
    accepted = await a.call(web, "/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"})
    assert accepted["forwarded"] is True, accepted
    forwarded = await ext.next_request()
    await ext.stream(["Hel", "lo ", "there"], request_id="r1", final=True)
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["data"] == "Hello there"
    await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    duplicate = await a.call(web, "/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"})
    assert duplicate.get("duplicate") is True, duplicate
    await a.call(web, "/llm", "GET_REQUEST", {"requestId": "r1"})
    resumed = await a.call(web, "/llm", "RESUME_STREAM", {"requestId": "r1", "afterSeq": 0})
    assert resumed["complete"] is True and resumed["replayed"] >= 1, resumed
    page = await a.call(web, "/llm", "GET_HISTORY_PAGE", {"roomName": "web"})
    await a.call(web, "/llm", "GET_FULL_CONTEXT", {"roomName": "web"})
    await web.next("/llm", "UPDATE_CONTEXT")
    await a.call(
        web, "/llm", "GET_OFFLINE_MESSAGES", {"roomName": "web", "since": "2000-01-01T00:00:00Z"}
    )
    await a.call(
        web, "/llm", "message", {"type": 0, "data": "Connection active?", "requestId": "p"}
    )

    # a non-stream answer, an extension's failure, a cancel
    await a.call(web, "/llm", "LLM_REQUEST", {"requestId": "r2", "message": "Again"})
    await ext.next_request(predicate=lambda p: p["requestId"] == "r2")
    await ext.message("Sure.", request_id="r2")
    await web.next("/llm", "LLM_RESPONSE", lambda p: p["requestId"] == "r2")
    await a.call(web, "/llm", "LLM_REQUEST", {"requestId": "r3", "message": "Fail"})
    await ext.next_request(predicate=lambda p: p["requestId"] == "r3")
    await a.call(ext.peer, "/llm", "ERROR", {"message": "broken", "requestId": "r3"})
    await web.next("/llm", "ERROR", lambda p: p.get("requestId") == "r3")
    await a.call(web, "/llm", "LLM_REQUEST", {"requestId": "r4", "message": "Stop"})
    await ext.next_request(predicate=lambda p: p["requestId"] == "r4")
    await a.call(web, "/llm", "CANCEL_REQUEST", {"requestId": "r4"})
    await ext.peer.next("/llm", "CANCEL_REQUEST")
    await ext.peer.next("/llm", "PING_EXTENSION", timeout=3)

    # history changes, a forwarded call, debug, the room goes
    first = page["messages"][0]["messageId"]
    await a.call(
        web,
        "/llm",
        "EDIT_MESSAGE",
        {"roomName": "web", "messageId": first, "updatedFields": {"message": "Hi!"}},
    )
    await a.call(web, "/llm", "DELETE_MESSAGE", {"roomName": "web", "messageIds": [first]})
    await a.call(web, "/llm", "CLEAR_MESSAGES", {"roomName": "web"})
    await a.call(boss, "/debug", "TOGGLE_DEBUG_MODE")
    await a.call(boss, "/debug", "GET_REQUESTS", {"requestId": "r1"})
    await a.call(boss, "/debug", "GET_REQUESTS")
    await a.call(boss, "/debug", "GET_METRICS_SERIES")
    await a.call(boss, "/debug", "SERVER_STATUS")
    await a.call(boss, "/debug", "GET_AUDIT_LOG")
    await a.call(boss, "/rooms", "GET_CONNECTION_POLICY")
    await a.call(boss, "/llm", "GET_EXTENSIONS_STATE")
    await boss.open("/function_call", auth("admin", server.keys["admin"], clientType="monitor"))
    await a.call(
        boss,
        "/function_call",
        "FUNCTION_CALL",
        {"requestId": "f1", "functionName": "hi", "target": "web"},
    )
    await web.next("/function_call", "FUNCTION_CALL")
    await a.call(boss, "/rooms", "KICK_MEMBER", {"targetIdentity": "web", "roomName": "lobby"})
    await a.call(boss, "/rooms", "DELETE_ROOM", {"roomName": "lobby"})
    await boss.next("/rooms", "DELETE_ROOM")
    await asyncio.sleep(0.3)  # the client list and the assignment view go out in bursts

    acked = a.check()
    received = check_events(web, boss, ext.peer, st)
    assert forwarded["target"] == "SillyTavern-1"
    # the whole surface of a conversation was seen, not a lucky few
    assert received >= {
        "CLIENT_KEY_ASSIGNED",
        "CONNECTED_CLIENTS_UPDATE",
        "UPDATE_CONNECTED_CLIENTS",
        "ROOM_CREATED",
        "MEMBER_JOINED",
        "MEMBER_ROLE_CHANGED",
        "MEMBER_MUTED",
        "MEMBER_UNMUTED",
        "MEMBER_STATUS_UPDATE",
        "MEMBER_LEFT",
        "WARNING",
        "ROOM_MODE_CHANGED",
        "DELETE_ROOM",
        "ASSIGNMENTS_UPDATED",
        "AVAILABLE_EXTENSIONS",
        "NEW_MESSAGE",
        "MESSAGE_UPDATED",
        "MESSAGES_DELETED",
        "MESSAGES_CLEARED",
        "UPDATE_CONTEXT_PAGE",
        "UPDATE_CONTEXT",
        "OFFLINE_MESSAGES",
        "LLM_REQUEST",
        "SERVER_STREAM_DATA",
        "SERVER_STREAM_END",
        "message",
        "LLM_RESPONSE",
        "REQUEST_STATUS_UPDATE",
        "REQUEST_STATE",
        "CANCEL_REQUEST",
        "PING_EXTENSION",
        "ERROR",
        "FUNCTION_CALL",
        "DEBUG_MODE_CHANGED",
    }, set(OUTBOUND) - received
    assert len(acked) >= 33, acked


def test_the_check_refuses_what_the_types_do_not_allow():
    """The validation above can fail: an unknown key, a wrong type, a missing key."""
    good = {
        "requestId": "r",
        "outputId": "o",
        "streamId": "s",
        "chunkIndex": 0,
        "type": 4,
        "data": "x",
        "source": "e",
        "identity": "e",
        "roomName": "w",
        "seq": 1,
        "chunks": 1,
    }
    stream = EVENTS["SERVER_STREAM_DATA"]
    stream.validate_python(good)
    for bad in ({**good, "extra": 1}, {**good, "seq": "1"}, {k: good[k] for k in list(good)[1:]}):
        with pytest.raises(ValidationError):
            stream.validate_python(bad)
    with pytest.raises(ValidationError):
        adapter(ACKS["CREATE_ROOM"]).validate_python({"status": "ok", "success": True})
