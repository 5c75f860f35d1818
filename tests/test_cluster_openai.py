"""The OpenAI-compatible ``/v1`` API across cluster nodes (docs/openai.md,
docs/cluster.md): the official SDK and raw SSE against a node whose
extension is on another node, real processes on PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import httpx
import pytest

import openai
from newage.protocol.names import ClientKind
from tests.helpers.cluster import Cluster, MakeCluster
from tests.helpers.fake_extension import NS, FakeExtension
from tests.helpers.wait import eventually

EXT = "SillyTavern-1"
HELLO = [{"role": "user", "content": "Hello there"}]


async def two_nodes(cluster: MakeCluster, **env: str) -> tuple[Cluster, FakeExtension, str]:
    """Two nodes, the extension on node 0; the API caller's bearer token."""
    c = await cluster(2, **env)
    ext = await c.extension(0)
    key = await c.key("bot", ClientKind.CLIENT)
    await c.settled()
    bearer = f"bot:{key}"

    async def node1_routes_to_it() -> bool:  # the load readings, about a second
        remote = (await c.status(1))["cluster"].get("remoteExtensions", {})
        return EXT in remote

    await eventually(node1_routes_to_it, timeout=10)
    return c, ext, bearer


def sdk(c: Cluster, index: int, bearer: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{c.nodes[index].url}/v1", api_key=bearer, max_retries=0, timeout=30
    )


def sse_data(raw: str) -> list[str]:
    return [
        line[6:]
        for block in raw.split("\n\n")
        for line in block.split("\n")
        if line.startswith("data: ")
    ]


def text_of(datas: list[str]) -> str:
    pieces = [json.loads(d) for d in datas if d != "[DONE]"]
    return "".join(p["choices"][0]["delta"].get("content") or "" for p in pieces if p["choices"])


async def test_models_plain_and_streamed_answers_from_another_nodes_extension(
    cluster: MakeCluster,
):
    c, ext, bearer = await two_nodes(cluster)
    api = sdk(c, 1, bearer)
    listed = await api.models.list()
    assert [m.id for m in listed.data] == ["auto", EXT]

    plain = asyncio.create_task(api.chat.completions.create(model=EXT, messages=HELLO))
    forwarded = await ext.next_request(timeout=10)
    assert forwarded["currentRequest"]["messages"] == HELLO
    # its state as its own node knows it
    busy = (await api.models.list()).data[1].model_extra or {}
    assert (busy["state"], busy["available"], busy["in_flight"]) == ("generating", True, 1)
    await ext.stream(["Hi", ", ", "human."], request_id=forwarded["requestId"], final=True)
    result = await asyncio.wait_for(plain, 15)
    assert result.id == forwarded["requestId"] and result.model == EXT
    assert result.choices[0].message.content == "Hi, human."
    assert result.choices[0].finish_reason == "stop"

    # streamed through the SDK: every piece, in order, then the end
    tokens = [f"t{i} " for i in range(200)]

    async def collect() -> list[Any]:
        stream = await api.chat.completions.create(model="auto", messages=HELLO, stream=True)
        return [chunk async for chunk in stream]

    call = asyncio.create_task(collect())
    forwarded = await ext.next_request(timeout=10)
    await ext.stream(tokens, request_id=forwarded["requestId"], final=True)
    chunks = await asyncio.wait_for(call, 20)
    choices = [ch.choices[0] for ch in chunks if ch.choices]
    assert choices[0].delta.role == "assistant"
    assert "".join(ch.delta.content or "" for ch in choices) == "".join(tokens)
    assert choices[-1].finish_reason == "stop"

    # raw SSE: consecutive ids, the text, then [DONE]
    async with httpx.AsyncClient(base_url=c.nodes[1].url, timeout=30) as http:
        body = {"model": EXT, "messages": HELLO, "stream": True}
        auth = {"Authorization": f"Bearer {bearer}"}
        post = asyncio.create_task(http.post("/v1/chat/completions", json=body, headers=auth))
        forwarded = await ext.next_request(timeout=10)
        await ext.stream(["one", " two", " three"], request_id=forwarded["requestId"], final=True)
        response = await asyncio.wait_for(post, 20)
    assert response.status_code == 200
    datas = sse_data(response.text)
    assert datas[-1] == "[DONE]" and text_of(datas) == "one two three"
    ids = [int(line[4:]) for line in response.text.split("\n") if line.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1))


async def test_a_caller_leaving_mid_stream_cancels_the_request_on_its_node(
    cluster: MakeCluster,
):
    c, ext, bearer = await two_nodes(cluster)
    body = {"model": EXT, "messages": HELLO, "stream": True}
    async with (
        httpx.AsyncClient(base_url=c.nodes[1].url, timeout=20) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {bearer}"}
        ) as response,
    ):
        forwarded = await ext.next_request(timeout=10)
        await ext.token("out-1", "first", first=True, request_id=forwarded["requestId"])
        lines = response.aiter_lines()
        while not (await anext(lines)).startswith('data: {"id"'):
            pass
        second = await anext(lines)
        while not second.startswith("data: "):
            second = await anext(lines)
        assert json.loads(second[6:])["choices"][0]["delta"]["content"] == "first"
    cancel = await ext.peer.next(NS, "CANCEL_REQUEST", timeout=10)
    assert cancel["requestId"] == forwarded["requestId"]
    # the node holding it says it ended cancelled
    boss = await c.connect(0, "boss", ClientKind.MONITOR, ("/llm",))
    found = await boss.call("/llm", "GET_REQUEST", {"requestId": forwarded["requestId"]})
    assert found["status"] == "ok", found
    assert found["requestStatus"] == "cancelled", found


async def test_following_an_answer_from_the_api_node_while_it_runs_on_another(
    cluster: MakeCluster,
):
    c, ext, bearer = await two_nodes(cluster)
    auth = {"Authorization": f"Bearer {bearer}", "X-Newage-Resumable": "1"}
    body = {"model": EXT, "messages": HELLO, "stream": True}
    async with httpx.AsyncClient(base_url=c.nodes[1].url, timeout=20) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth) as first:
            request = await ext.next_request(timeout=10)
            rid = request["requestId"]
            output = await ext.stream(["ab"], request_id=rid)
            lines = first.aiter_lines()
            seen: list[str] = []
            while len([x for x in seen if x.startswith("data: ")]) < 2:
                seen.append(await anext(lines))
        last_id = [x for x in seen if x.startswith("id: ")][-1][4:]
        assert text_of([x[6:] for x in seen if x.startswith("data: ")]) == "ab"
        url = f"/v1/chat/completions/{rid}/stream"
        # followed from node 1 while the answer still runs on node 0: the
        # replay, then the live rest (the 200 waits for the next words)
        again = asyncio.create_task(http.get(url, headers={**auth, "Last-Event-ID": last_id}))
        whole_live = asyncio.create_task(http.get(url, headers=auth))  # a second reader
        await asyncio.sleep(0.5)
        assert not again.done() and not whole_live.done()
        await ext.token(output, "cd", first=False, request_id=rid)
        await ext.token(output, "ef", first=False, request_id=rid, final=True)
        response = await asyncio.wait_for(again, 15)
        assert response.status_code == 200
        raw = response.text
        both = (await asyncio.wait_for(whole_live, 15)).text
        assert sse_data(both)[-1] == "[DONE]" and text_of(sse_data(both)) == "abcdef"
        datas = sse_data(raw)
        assert datas[-1] == "[DONE]" and text_of(datas) == "cdef"
        ids = [int(line[4:]) for line in raw.split("\n") if line.startswith("id: ")]
        assert ids == list(range(int(last_id) + 1, int(last_id) + 1 + len(ids)))
        assert not ext.peer.received(NS, "CANCEL_REQUEST")
        # once ended: the whole answer from the start, through either node
        for node in c.nodes:
            whole = await http.get(f"{node.url}{url}", headers=auth)
            assert whole.status_code == 200
            assert (
                sse_data(whole.text)[-1] == "[DONE]" and text_of(sse_data(whole.text)) == "abcdef"
            )
        # unknown ids stay 404 on the API's node
        missing = await http.get("/v1/chat/completions/chatcmpl-nope/stream", headers=auth)
        assert missing.status_code == 404


async def test_what_crosses_for_an_api_caller_is_bounded_by_max_answer_bytes(
    cluster: MakeCluster,
):
    c, ext, bearer = await two_nodes(cluster, NEWAGE_MAX_ANSWER_BYTES="1000")
    body = {"model": EXT, "messages": HELLO, "stream": True}
    auth = {"Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(base_url=c.nodes[1].url, timeout=30) as http:
        post = asyncio.create_task(http.post("/v1/chat/completions", json=body, headers=auth))
        forwarded = await ext.next_request(timeout=10)
        await ext.stream(["x" * 100] * 15, request_id=forwarded["requestId"], final=True)
        response = await asyncio.wait_for(post, 20)
    datas = sse_data(response.text)
    # the holding node cut the answer at the limit: that is all that crossed
    assert datas[-1] != "[DONE]" and "maxAnswerBytes" in json.loads(datas[-1])["error"]["message"]
    assert text_of(datas[:-1]) == "x" * 1000


async def test_a_killed_extension_node_ends_the_api_callers_within_15_s(cluster: MakeCluster):
    c, ext, bearer = await two_nodes(cluster)
    other = await c.extension(0, "SillyTavern-2")

    async def node1_routes_to_both() -> bool:
        remote = (await c.status(1))["cluster"].get("remoteExtensions", {})
        return "SillyTavern-2" in remote

    await eventually(node1_routes_to_both, timeout=10)
    api = sdk(c, 1, bearer)
    # one streaming caller with its first words, one plain caller waiting
    stream_call, rid = await asyncio.wait_for(_first_words(api, ext), 15)
    plain = asyncio.create_task(api.chat.completions.create(model="SillyTavern-2", messages=HELLO))
    await other.next_request(timeout=10)
    # and a second reader of the stream, following it from node 1
    http = httpx.AsyncClient(base_url=c.nodes[1].url, timeout=30)
    auth = {"Authorization": f"Bearer {bearer}"}
    follower = asyncio.create_task(http.get(f"/v1/chat/completions/{rid}/stream", headers=auth))
    await asyncio.sleep(0.5)
    assert not follower.done()
    proc = c.nodes[0].proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait)
    killed = time.monotonic()
    with pytest.raises(openai.APIError) as streamed:
        await asyncio.wait_for(stream_call, 15)
    assert "stopped" in str(streamed.value.message)
    with pytest.raises(openai.APIStatusError) as failed:
        await asyncio.wait_for(plain, 15)
    assert failed.value.status_code == 503
    followed = await asyncio.wait_for(follower, 15)
    assert time.monotonic() - killed < 15
    datas = sse_data(followed.text)
    assert text_of(datas[:-1]) == "half " and "stopped" in json.loads(datas[-1])["error"]["message"]
    # the survivor closes the answer (docs/cluster.md, "A node that dies");
    # the stream log is gone with its node: the text is in the history
    boss = await c.connect(1, "boss", ClientKind.MONITOR, ("/llm",))

    async def closed_by_the_survivor() -> bool:
        found = await boss.call("/llm", "GET_REQUEST", {"requestId": rid})
        return found.get("requestStatus") == "failed"

    await eventually(closed_by_the_survivor, timeout=15)
    again = await http.get(f"/v1/chat/completions/{rid}/stream", headers=auth)
    await http.aclose()
    assert again.status_code == 410 and again.json()["error"]["code"] == "stream_gone"


async def _first_words(
    api: openai.AsyncOpenAI, ext: FakeExtension
) -> tuple[asyncio.Task[list[Any]], str]:
    """A stream whose first piece arrived; the task reading its rest."""
    got_first = asyncio.Event()

    async def read() -> list[Any]:
        stream = await api.chat.completions.create(model=EXT, messages=HELLO, stream=True)
        chunks = []
        async for chunk in stream:
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                got_first.set()
        return chunks

    task = asyncio.create_task(read())
    request = await ext.next_request(timeout=10)
    await ext.token("out-k", "half ", first=True, request_id=request["requestId"])
    await got_first.wait()
    return task, request["requestId"]
