"""``newage adapter openai`` against a local mock of the OpenAI API."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from newage.protocol.names import ClientKind
from newage.sdk import NewAgeError
from newage.sdk.adapter import OpenAIBackend
from tests.helpers.mock_openai import MockOpenAI
from tests.helpers.proc import NEWAGE


@pytest.fixture
async def mock() -> AsyncIterator[MockOpenAI]:
    backend = await MockOpenAI().start()
    yield backend
    await backend.stop()


@pytest.mark.parametrize("stream", [True, False])
async def test_the_adapter_answers_from_the_backend(sdk, mock, stream):
    await sdk.extension(OpenAIBackend(mock.base_url, "mock-model", stream=stream))
    web = await sdk.client()
    answer = await web.ask("hello there")
    deltas = [d async for d in answer]
    assert answer.text == "You said: hello there" and answer.status == "completed"
    assert "".join(d.text for d in deltas) == answer.text
    if stream:
        assert all(d.seq is not None for d in deltas)
    else:
        assert [d.seq for d in deltas] == [None]
    body = mock.bodies[-1]
    assert body["model"] == "mock-model" and bool(body.get("stream")) is stream
    assert body["messages"] == [{"role": "user", "content": "hello there"}]

    # a second request brings the room's conversation along
    assert await web.complete("and again", timeout=10) == "You said: and again"
    assert mock.bodies[-1]["messages"] == [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "You said: hello there"},
        {"role": "user", "content": "and again"},
    ]


async def test_a_cancel_closes_the_backends_stream(sdk):
    slow = await MockOpenAI(delay=0.2).start()
    try:
        await sdk.extension(OpenAIBackend(slow.base_url, "m"))
        web = await sdk.client()
        answer = await web.ask("one two three four five six seven eight nine ten")
        await anext(answer)
        await web.cancel(answer.request_id)
        await asyncio.wait_for(answer.wait(), 5)
        assert answer.status == "cancelled"
        await asyncio.wait_for(slow.aborted.wait(), 5)
    finally:
        await slow.stop()


async def test_a_backend_that_is_down_fails_the_request_visibly(sdk):
    await sdk.extension(OpenAIBackend("http://127.0.0.1:9/v1", "m"))
    web = await sdk.client()
    with pytest.raises(NewAgeError) as err:
        await web.complete("anyone?", timeout=60)
    assert err.value.code == "upstream" and "Connection error" in err.value.message


async def test_the_command_serves_api_requests_with_their_messages(server, mock):
    """The console script end to end; an /v1 request's own messages reach the backend."""
    import openai

    await server.trust("SillyTavern-adapter", ClientKind.SILLYTAVERN, "pw")
    proc = await asyncio.create_subprocess_exec(
        NEWAGE, "adapter", "openai", "--base-url", mock.base_url, "--model", "mock-model",
        "--client-id", "SillyTavern-adapter", "--server", server.url, "--password", "pw",
        "--api-key-env", "MOCK_KEY",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MOCK_KEY": "sk-mock"},
    )  # fmt: skip
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"serving mock-model as SillyTavern-adapter" in line, line
        key = await server.client("api")
        api = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=f"api:{key}")
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is up?"},
        ]
        chunks = [
            c.choices[0].delta.content or ""
            async for c in await api.chat.completions.create(
                model="SillyTavern-adapter", messages=messages, stream=True, temperature=0.5
            )
            if c.choices
        ]
        assert "".join(chunks) == "You said: What is up?"
        body = mock.bodies[-1]
        assert body["messages"] == messages and body["temperature"] == 0.5
        await api.close()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def test_the_command_needs_one_way_to_log_in():
    import subprocess

    done = subprocess.run(
        [NEWAGE, "adapter", "openai", "--base-url", "http://x/v1", "--model", "m",
         "--client-id", "SillyTavern-a", "--password", "p", "--key-env", "K"],
        capture_output=True, text=True, check=False, env={**os.environ, "K": "k"},
    )  # fmt: skip
    assert done.returncode == 2 and "not both" in done.stderr
