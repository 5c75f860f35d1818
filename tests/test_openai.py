"""The OpenAI-compatible API: the official SDK and raw SSE against a real
server, answered by a simulated extension on the real wire protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

import openai
from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect, fake_extension, room
from tests.helpers.fake_extension import NS, FakeExtension
from tests.helpers.server import RunningServer
from tests.helpers.wait import eventually, settle

EXT = "SillyTavern-1"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]


async def api_key(server: RunningServer, client_id: str = "bot") -> str:
    key = server.keys.get(client_id) or await server.client(client_id)
    server.keys[client_id] = key
    return f"{client_id}:{key}"


def clients(server: RunningServer, key: str) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    base = f"{server.url}/v1"
    return (
        openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=20),
        openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=20),
    )


async def answer(ext: FakeExtension, tokens: list[str]) -> dict[str, Any]:
    """Wait for the forwarded request and stream ``tokens`` as its answer."""
    request = await ext.next_request()
    await ext.stream(tokens, final=True)
    return request


def sse_events(raw: str) -> list[str]:
    return [block for block in raw.split("\n\n") if block]


def data_of(block: str) -> str:
    return next(line[6:] for line in block.split("\n") if line.startswith("data: "))


async def test_models_lists_auto_and_the_usable_extensions(server, peers):
    await fake_extension(server, peers)
    sync, aio = clients(server, await api_key(server))
    listed = await aio.models.list()
    assert [m.id for m in listed.data] == ["auto", EXT]
    assert all(m.object == "model" and m.owned_by == "newage" for m in listed.data)
    assert isinstance(listed.data[0].created, int)
    names = await asyncio.to_thread(lambda: [m.id for m in sync.models.list()])
    assert names == ["auto", EXT]


async def test_sync_completion_goes_through_history_like_a_socket_request(server, peers):
    ext = await fake_extension(server, peers)
    sync, _ = clients(server, await api_key(server))
    call = asyncio.create_task(
        asyncio.to_thread(sync.chat.completions.create, model=EXT, messages=HELLO)
    )
    forwarded = await answer(ext, ["Hi", ", ", "human."])
    result = await call
    assert forwarded["message"] == "Hello there" and forwarded["targetRoom"] == "api:bot"
    assert forwarded["currentRequest"]["messages"] == HELLO
    assert forwarded["currentRequest"]["identity"] == "bot"
    assert result.object == "chat.completion" and result.model == EXT
    assert result.id == forwarded["requestId"] and result.id.startswith("chatcmpl-")
    assert result.choices[0].message.content == "Hi, human."
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason == "stop"
    # one token per four characters, rounded up: 3 + 3 prompt, 3 answer
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (6, 3)
    assert result.usage.total_tokens == 9
    history = await server.app.history.latest("api:bot", 10)
    assert [(m["message"], m.get("isResponse", False)) for m in history] == [
        ("Hello there", False),
        ("Hi, human.", True),
    ]


async def test_async_stream_with_usage(server, peers):
    ext = await fake_extension(server, peers)
    _, aio = clients(server, await api_key(server))

    async def collect() -> list[Any]:
        stream = await aio.chat.completions.create(
            model="auto", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    call = asyncio.create_task(collect())
    await answer(ext, ["One", " two", " three"])
    chunks = await call
    assert len({(c.id, c.created) for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == EXT for c in chunks)
    choices = [c.choices[0] for c in chunks if c.choices]
    assert choices[0].delta.role == "assistant"
    assert "".join(c.delta.content or "" for c in choices) == "One two three"
    assert [c.finish_reason for c in choices[:-1]] == [None] * (len(choices) - 1)
    assert choices[-1].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == 4  # 13 characters
    assert all(c.usage is None for c in chunks[:-1])


async def test_sync_stream_and_async_non_stream(server, peers):
    ext = await fake_extension(server, peers)
    sync, aio = clients(server, await api_key(server))

    def stream() -> str:
        parts = sync.chat.completions.create(model=EXT, messages=HELLO, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in parts if c.choices)

    call = asyncio.create_task(asyncio.to_thread(stream))
    await answer(ext, ["abc", "def"])
    assert await call == "abcdef"
    call2 = asyncio.create_task(aio.chat.completions.create(model=EXT, messages=HELLO))
    await ext.next_request()
    await ext.message("whole answer")  # a non-stream answer
    done = await call2
    assert done.choices[0].message.content == "whole answer"


@pytest.mark.parametrize("server_settings", [{"apiKeepAliveMs": 200}])
async def test_raw_sse_framing_and_keep_alive(server, peers):
    ext = await fake_extension(server, peers)
    key = await api_key(server)
    body = {"model": EXT, "messages": HELLO, "stream": True}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=20) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        await ext.next_request()
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = ""
        lines = response.aiter_text()
        while ": ping" not in raw:  # silent extension: keep-alives
            raw += await anext(lines)
        await ext.stream(["x", "y"], final=True)
        async for text in lines:
            raw += text
    events = sse_events(raw)
    assert events[-1] == "data: [DONE]"
    assert ": ping" in events
    data = [e for e in events if e.startswith("id: ")]
    assert [int(e.split("\n")[0][4:]) for e in data] == list(range(1, len(data) + 1))
    payloads = [json.loads(data_of(e)) for e in data]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads) == "xy"
    assert payloads[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


async def test_error_after_the_stream_started_is_an_error_event(server, peers):
    ext = await fake_extension(server, peers)
    _, aio = clients(server, await api_key(server))

    async def consume() -> list[str]:
        seen = []
        stream = await aio.chat.completions.create(model=EXT, messages=HELLO, stream=True)
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
            if len(seen) == 2:
                await ext.error("GPU on fire")
        return seen

    call = asyncio.create_task(consume())
    await ext.next_request()
    await ext.token("out-1", "partial", first=True)
    with pytest.raises(openai.APIError, match="GPU on fire"):
        await call
    history = await server.app.history.latest("api:bot", 10)
    assert history[-1]["message"] == "partial" and history[-1]["incomplete"] is True


async def test_disconnect_cancels_the_request(server, peers):
    ext = await fake_extension(server, peers)
    key = await api_key(server)
    body = {"model": EXT, "messages": HELLO, "stream": True}

    async def first_token() -> dict[str, Any]:
        request = await ext.next_request()
        await ext.token("out-1", "first", first=True)
        return request

    # the status line waits for the extension's first word
    answering = asyncio.create_task(first_token())
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=20) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        first = await anext(response.aiter_lines())
        assert first.startswith("id: 1")
    forwarded = await answering
    cancel = await ext.peer.next(NS, "CANCEL_REQUEST")
    assert cancel["requestId"] == forwarded["requestId"]
    request = server.app.tracker.get(forwarded["requestId"])
    assert request is not None and not request.open


async def test_non_stream_disconnect_cancels_too(server, peers):
    ext = await fake_extension(server, peers)
    key = await api_key(server)
    body = {"model": EXT, "messages": HELLO}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        call = asyncio.create_task(
            http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        )
        forwarded = await ext.next_request()
        call.cancel()
    cancel = await ext.peer.next(NS, "CANCEL_REQUEST")
    assert cancel["requestId"] == forwarded["requestId"]


async def test_a_cancel_by_an_admin_ends_the_api_stream_at_once(server, peers):
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers)
    key = await api_key(server)
    body = {"model": EXT, "messages": HELLO, "stream": True}
    answering = asyncio.create_task(first_words(ext))
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=20) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("id: 1")
        forwarded = await answering
        ack = await boss.call("/llm", "CANCEL_REQUEST", {"requestId": forwarded["requestId"]})
        assert ack["status"] == "ok", ack
        rest = [line async for line in lines]
    datas = [line[6:] for line in rest if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    last = json.loads(datas[-2])
    assert last["choices"][0]["finish_reason"] == "stop"
    cancel = await ext.peer.next(NS, "CANCEL_REQUEST")
    assert cancel["requestId"] == forwarded["requestId"]


async def first_words(ext: FakeExtension) -> dict[str, Any]:
    request = await ext.next_request()
    await ext.token("out-1", "first", first=True)
    return request


async def test_user_field_and_header_name_the_room(server, peers):
    ext = await fake_extension(server, peers)
    _, aio = clients(server, await api_key(server))
    _, other = clients(server, await api_key(server, "stranger"))
    call = asyncio.create_task(aio.chat.completions.create(model=EXT, messages=HELLO, user="team"))
    assert (await answer(ext, ["ok"]))["targetRoom"] == "team"
    await call
    assert server.app.rooms.rooms["team"].master == "bot"
    call = asyncio.create_task(
        aio.chat.completions.create(
            model=EXT, messages=HELLO, extra_headers={"X-Newage-Room": "team"}
        )
    )
    assert (await answer(ext, ["again"]))["targetRoom"] == "team"
    await call
    with pytest.raises(openai.PermissionDeniedError, match="not a member"):
        await other.chat.completions.create(model=EXT, messages=HELLO, user="team")
    with pytest.raises(openai.PermissionDeniedError, match="reserved"):
        await other.chat.completions.create(model=EXT, messages=HELLO, user="api:latecomer")
    assert "api:latecomer" not in server.app.rooms.rooms


async def test_error_statuses(server, peers):
    _, aio = clients(server, await api_key(server))
    with pytest.raises(openai.APIStatusError) as no_ext:
        await aio.chat.completions.create(model="auto", messages=HELLO)
    assert no_ext.value.status_code == 503
    assert no_ext.value.response.headers["retry-after"].isdigit()
    assert no_ext.value.body["code"] == "unavailable"
    await fake_extension(server, peers)
    with pytest.raises(openai.NotFoundError) as unknown:
        await aio.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert unknown.value.body["code"] == "model_not_found"
    assert unknown.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError):
        await aio.chat.completions.create(model=EXT, messages=[])
    with pytest.raises(openai.BadRequestError, match="user message"):
        await aio.chat.completions.create(model=EXT, messages=[HELLO[0]])
    _, wrong = clients(server, "bot:not-the-key")
    with pytest.raises(openai.AuthenticationError):
        await wrong.models.list()
    _, bare = clients(server, "no-colon-here")
    with pytest.raises(openai.AuthenticationError):
        await bare.chat.completions.create(model=EXT, messages=HELLO)
    ext_key = await server.client("SillyTavern-2", ClientKind.SILLYTAVERN)
    _, as_ext = clients(server, f"SillyTavern-2:{ext_key}")
    with pytest.raises(openai.PermissionDeniedError):
        await as_ext.chat.completions.create(model=EXT, messages=HELLO)
    async with httpx.AsyncClient(base_url=server.url) as http:
        bad = await http.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"Authorization": f"Bearer {await api_key(server)}"},
        )
        missing = await http.post("/v1/embeddings", json={})
    assert bad.status_code == 400
    assert set(bad.json()["error"]) == {"message", "type", "param", "code"}
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert server.app.tracker.open_count() == 0  # nothing was dispatched


@pytest.mark.parametrize("server_settings", [{"requestTimeout": 300}])
async def test_timeout_is_504_before_the_stream_and_an_event_after(server, peers):
    ext = await fake_extension(server, peers)
    _, aio = clients(server, await api_key(server))
    with pytest.raises(openai.APIStatusError) as late:
        await aio.chat.completions.create(model=EXT, messages=HELLO)
    assert late.value.status_code == 504
    assert len(ext.requests()) == 1

    async def consume() -> None:
        stream = await aio.chat.completions.create(model=EXT, messages=HELLO, stream=True)
        async for _ in stream:
            pass

    call = asyncio.create_task(consume())
    await ext.next_request(predicate=lambda r: len(ext.requests()) >= 1)
    await ext.token("out-2", "started", first=True)
    with pytest.raises(openai.APIError, match="did not answer in time"):
        await call


@pytest.mark.parametrize("server_settings", [{"authFailureLimit": 2}])
async def test_failed_logins_are_429(server, peers):
    await api_key(server)
    _, wrong = clients(server, "bot:wrong")
    for _ in range(2):
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        await wrong.models.list()
    assert limited.value.response.headers["retry-after"].isdigit()


async def test_extension_gone_before_answering_is_503(server, peers):
    ext = await fake_extension(server, peers)
    _, aio = clients(server, await api_key(server))
    call = asyncio.create_task(aio.chat.completions.create(model=EXT, messages=HELLO))
    await ext.next_request()
    await ext.peer.close()
    with pytest.raises(openai.APIStatusError) as gone:
        await call
    assert gone.value.status_code == 503


async def test_cors_preflight_on_v1(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        pre = await http.options(
            "/v1/chat/completions",
            headers={
                "Origin": "http://localhost:8000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] in {"*", "http://localhost:8000"}
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("server_settings", [{"corsOrigins": ["http://good.example"]}])
async def test_cors_preflight_refuses_other_origins(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        pre = await http.options(
            "/v1/models",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert pre.status_code == 403  # the server-wide origin guard
    assert pre.json()["message"] == "Origin not allowed."
    assert "access-control-allow-origin" not in pre.headers
    async with httpx.AsyncClient(base_url=server.url) as http:
        good = await http.options(
            "/v1/models",
            headers={"Origin": "http://good.example", "Access-Control-Request-Method": "GET"},
        )
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "http://good.example"


async def test_a_socket_member_of_the_room_sees_the_api_conversation(server, peers):
    ext = await fake_extension(server, peers)
    _, aio = clients(server, await api_key(server))
    watcher = await connect(server, peers, "bot")  # the same client, on Socket.IO
    call = asyncio.create_task(aio.chat.completions.create(model=EXT, messages=HELLO))
    await answer(ext, ["seen"])
    await call
    await eventually(lambda: "api:bot" in server.app.rooms.rooms_of("bot"))
    end = await watcher.next(NS, "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    assert end["roomName"] == "api:bot"


async def test_a_room_that_does_not_forward_is_409_and_keeps_the_request(server, peers):
    ext = await fake_extension(server, peers)
    _, aio = clients(server, await api_key(server))
    boss = await admin(server, peers)
    await room(boss, "stage", {"bot": "guest"}, mode="MasterOnly")
    with pytest.raises(openai.ConflictError, match="MasterOnly"):
        await aio.chat.completions.create(model=EXT, messages=HELLO, user="stage")
    history = await server.app.history.latest("stage", 10)
    assert [m["message"] for m in history if m.get("fromClient")] == ["Hello there"]
    await settle(ext.peer, NS)  # anything forwarded would have arrived by now
    assert ext.requests() == []
