"""The Python SDK on both sides of a real server: Client <-> Extension."""

from __future__ import annotations

import asyncio

import pytest

from newage.protocol.names import ClientKind
from newage.sdk import (
    Client,
    Extension,
    MemberStatus,
    NewAgeError,
    Request,
    RequestStatus,
    RoomMessage,
)
from tests.helpers.sdk import tokens

ANSWER = ["Hel", "lo ", "wörld ", "😀", " and", " the", " rest."]


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_a_streamed_answer_arrives_exact_and_in_order(sdk):
    await sdk.extension(tokens(*ANSWER))
    web = await sdk.client()
    answer = await web.ask("Hi")
    deltas = [delta async for delta in answer]
    assert "".join(d.text for d in deltas) == "".join(ANSWER)
    assert [d.seq for d in deltas] == list(range(1, len(ANSWER) + 1))
    assert answer.text == "".join(ANSWER) and answer.status == "completed"
    assert answer.room == "web" and not answer.gap
    assert await answer.result() == "".join(ANSWER)


async def test_a_non_stream_answer_and_the_non_stream_call(sdk):
    async def whole(request: Request) -> str:
        return f"echo: {request.text}"

    ext = await sdk.extension(whole)
    web = await sdk.client()
    assert await web.complete("ping?", timeout=10) == "echo: ping?"
    answer = await web.ask("again")
    deltas = [d async for d in answer]
    assert [(d.text, d.seq) for d in deltas] == [("echo: again", None)]
    assert answer.status == "completed"
    assert ext.served == 2


async def test_cancel_stops_the_producing_task(sdk):
    started, closed, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow(request: Request):
        try:
            yield "first "
            started.set()
            await release.wait()
            yield "never"
        finally:
            closed.set()

    ext = await sdk.extension(slow)
    web = await sdk.client()
    answer = await web.ask("long one")
    first = await anext(answer)
    assert first.text == "first "
    await asyncio.wait_for(started.wait(), 5)
    ack = await web.cancel(answer.request_id)
    assert ack["targets"] == ["SillyTavern-1"]
    await asyncio.wait_for(answer.wait(), 5)
    assert answer.status == "cancelled" and answer.text == "first "
    with pytest.raises(NewAgeError) as err:
        await answer.result()
    assert err.value.code == "cancelled"
    await asyncio.wait_for(closed.wait(), 5)  # the generator was cancelled, not left running

    # the extension is free for the next request
    release.set()
    closed.clear()
    again = await web.ask("short")
    assert "".join([d.text async for d in again]) == "first never"
    assert again.status == "completed" and ext.served == 1


async def test_errors_carry_the_servers_code(sdk, server):
    async def broken(request: Request) -> str:
        raise RuntimeError(f"backend down for {request.text}")

    await sdk.extension(broken)
    web = await sdk.client()
    with pytest.raises(NewAgeError) as err:
        await web.complete("x", timeout=10)
    assert err.value.code == "upstream" and "backend down for x" in err.value.message

    with pytest.raises(NewAgeError) as err:
        await web.ask("x", room="no-such-room")
    assert err.value.code in {"forbidden", "not_found"}
    assert err.value.message == "Invalid or unauthorized target room."

    with pytest.raises(NewAgeError) as err:
        await web.cancel("nobody")
    assert err.value.code == "not_found"

    with pytest.raises(NewAgeError) as err:
        await web.create_room("mine")  # plain clients cannot
    assert err.value.code == "forbidden"

    await server.trust("other")
    with pytest.raises(NewAgeError) as err:
        await Client(server.url, "other", "wrong-key").connect()
    assert err.value.code == "unauthenticated" and err.value.message == "Invalid key."


async def test_extension_login_with_a_password_or_a_key(sdk, server):
    await sdk.extension(tokens("ok"), name="SillyTavern-pw", password="s3cret")
    web = await sdk.client()
    assert await web.complete("hi", target="SillyTavern-pw", timeout=10) == "ok"

    with pytest.raises(NewAgeError) as err:
        await Extension(server.url, "SillyTavern-pw", tokens("no"), password="wrong").start()
    assert err.value.message == "Invalid password."

    key = await server.client("SillyTavern-key", ClientKind.SILLYTAVERN)
    await sdk.extension(tokens("keyed"), name="SillyTavern-key", key=key)
    assert await web.complete("hi", target="SillyTavern-key", timeout=10) == "keyed"


async def test_rooms_events_history_and_the_context_the_extension_gets(sdk):
    seen: list[list[dict]] = []

    async def remember(request: Request) -> str:
        seen.append(request.messages)
        return f"answer {len(seen)}"

    await sdk.extension(remember)
    boss = await sdk.client("admin", ClientKind.MONITOR)
    web = await sdk.client()
    events = web.events()
    await boss.create_room("lounge")
    await boss.join_room("lounge", identity="web")
    assert "lounge" in [r.get("name", r.get("roomName")) for r in await web.rooms()]
    assert "web" in [m["identity"] for m in await web.members("lounge")]

    assert await web.complete("first", room="lounge", timeout=10) == "answer 1"
    assert await web.complete("second", room="lounge", timeout=10) == "answer 2"
    assert seen[1] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": "second"},
    ]

    got: list[object] = []
    async for event in events:
        got.append(event)
        if (
            isinstance(event, RequestStatus)
            and event.status == "completed"
            and len([e for e in got if isinstance(e, RequestStatus) and e.status == "completed"])
            == 2
        ):
            break
    messages = [e for e in got if isinstance(e, RoomMessage) and e.room == "lounge"]
    texts = [(m.identity, m.text) for m in messages if not m.is_system]
    assert texts == [
        ("web", "first"),
        ("SillyTavern-1", "answer 1"),
        ("web", "second"),
        ("SillyTavern-1", "answer 2"),
    ]
    assert any(isinstance(e, MemberStatus) and e.status == "processing" for e in got)
    events.close()

    history = [m async for page in web.history("lounge") for m in page.messages]
    said = [m["message"] for m in history if not m.get("isSystem")]
    assert said == ["first", "answer 1", "second", "answer 2"]
    await web.leave_room("lounge")
    with pytest.raises(NewAgeError):
        await web.ask("gone", room="lounge")


@pytest.mark.parametrize("server_settings", [dict(maxListPage=2)])
async def test_rooms_and_members_come_whole_across_pages(sdk):
    boss = await sdk.client("admin", ClientKind.MONITOR)
    names = [f"room-{i}" for i in range(5)]
    for name in names:
        await boss.create_room(name)
    for identity in ("a", "b", "c"):
        await boss.join_room("room-0", identity=identity)
    assert set(names) <= {r["name"] for r in await boss.rooms()}
    assert {m["identity"] for m in await boss.members("room-0")} == {"admin", "a", "b", "c"}


async def test_a_request_id_used_again_gets_the_first_answer_without_a_new_generation(sdk):
    calls: list[str] = []

    async def once(request: Request) -> str:
        calls.append(request.text)
        return "the first answer"

    await sdk.extension(once)
    web = await sdk.client()
    assert await web.complete("q", request_id="same-id", timeout=10) == "the first answer"
    again = await web.ask("q", request_id="same-id")
    assert again.ack["duplicate"] is True
    assert await asyncio.wait_for(again.result(), 5) == "the first answer"
    assert calls == ["q"]


async def test_a_request_waiting_in_the_extensions_queue_knows_its_position(sdk):
    release = asyncio.Event()

    async def slow(request: Request) -> str:
        await release.wait()
        return f"done {request.text}"

    await sdk.extension(slow)
    web = await sdk.client()
    first = await web.ask("1")
    second = await web.ask("2")
    assert second.status == "queued" and second.position == 1
    release.set()
    assert await asyncio.wait_for(first.result(), 10) == "done 1"
    assert await asyncio.wait_for(second.result(), 10) == "done 2"
