"""Answer and request sizes: answers are bounded, no event outgrows what a
stock client reads, the context sent to an extension is bounded in bytes."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tests.helpers.actors import connect, fake_extension
from tests.helpers.wait import settle


async def asked(server, peers, **kw):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web", **kw)
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi"})
    assert ack["status"] == "ok", ack
    await ext.next_request()
    return ext, web


@pytest.mark.parametrize("server_settings", [dict(maxAnswerBytes=5000, streamCoalesceMs=0)])
async def test_an_answer_past_the_maximum_is_cut_off_and_fails_visibly(server, peers):
    ext, web = await asked(server, peers)
    output_id = str(uuid.uuid4())
    tokens = [f"{n:04d}" + "x" * 496 for n in range(16)]  # 8000 bytes
    await ext.stream(tokens, output_id=output_id)
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["status"] == "failed" and end["data"] == "".join(tokens[:10])
    failed = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "failed")
    assert "maxAnswerBytes" in failed["message"] and "5000" in failed["message"]
    stored = [m.body for m in await server.app.store.latest_messages("web", 3)]
    assert stored[-1]["incomplete"] is True and stored[-1]["data"] == end["data"]
    # the rest of that output is swallowed, not taken for the next request
    ok = await web.call("/llm", "LLM_REQUEST", {"requestId": "r2", "message": "next"})
    assert ok["status"] == "ok"
    await ext.next_request(predicate=lambda p: p["requestId"] == "r2")
    await ext.stream(["more of the old answer"], output_id=output_id)
    await ext.message("the new answer", request_id="r2")
    response = await web.next("/llm", "LLM_RESPONSE", lambda p: p["requestId"] == "r2")
    assert response["data"] == "the new answer"
    assert not [p for p in web.received("/llm", "SERVER_STREAM_DATA") if p["requestId"] == "r2"]
    # a non-stream answer past the maximum is cut the same way
    await web.call("/llm", "LLM_REQUEST", {"requestId": "r3", "message": "again"})
    await ext.next_request(predicate=lambda p: p["requestId"] == "r3")
    await ext.message("é" * 3000, request_id="r3")  # 6000 bytes
    cut = await web.next("/llm", "LLM_RESPONSE", lambda p: p["requestId"] == "r3")
    assert cut["status"] == "failed" and cut["data"] == "é" * 2500


@pytest.mark.parametrize("server_settings", [dict(maxAnswerBytes=5000, streamCoalesceMs=0)])
async def test_retried_chunks_count_once_against_the_maximum(server, peers):
    ext, web = await asked(server, peers)
    output_id = str(uuid.uuid4())
    token = "a" * 4000
    stream_id = await ext.token(output_id, token, first=True)
    # four retries of one 800-byte sub-chunk: 3,200 bytes resent, none added
    for _ in range(4):
        await ext.retry_chunk(output_id, stream_id, 2, "b" * 800)
    await ext.token(output_id, "c" * 900, first=False, final=True)
    end = await web.next("/llm", "SERVER_STREAM_END")
    expected = "a" * 1600 + "b" * 800 + "a" * 1600 + "c" * 900
    assert end["status"] == "completed" and end["data"] == expected
    # and a retry that grows the answer past the maximum still cuts it
    await web.call("/llm", "LLM_REQUEST", {"requestId": "r2", "message": "again"})
    await ext.next_request(predicate=lambda p: p["requestId"] == "r2")
    output_id = str(uuid.uuid4())
    stream_id = await ext.token(output_id, "d" * 4500, first=True)
    await ext.retry_chunk(output_id, stream_id, 0, "e" * 1500)
    cut = await web.next("/llm", "SERVER_STREAM_END", lambda p: p["requestId"] == "r2")
    assert cut["status"] == "failed" and "e" not in cut["data"]


@pytest.mark.parametrize("server_settings", [dict(maxAnswerBytes=1_900_000, streamCoalesceMs=10)])
async def test_the_largest_answer_reaches_a_stock_python_socketio_client(server, peers):
    ext, web = await asked(server, peers, peer_options={"transports": ["websocket"]})
    tokens = ["y" * 100_000] * 22  # 2.2 MB, past the maximum
    await ext.stream(tokens)
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=20)
    assert end["status"] == "failed" and len(end["data"]) == 1_900_000
    response = await web.next("/llm", "LLM_RESPONSE", timeout=20)
    assert len(response["data"]) == len(response["message"]) == 1_900_000
    await web.next("/llm", "NEW_MESSAGE", lambda p: p["message"].get("isResponse"), timeout=20)
    await settle(web, "/llm")  # still connected and answering
    assert web.connected("/llm")


@pytest.mark.parametrize(
    "server_settings",
    [dict(extensionContextBytes=10_000, extensionContextLimit=100, extensionConcurrency=8)],
)
async def test_the_context_sent_to_an_extension_is_bounded_in_bytes(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    for n in range(6):
        ack = await web.call(
            "/llm", "LLM_REQUEST", {"requestId": f"r{n}", "message": f"{n}" + "z" * 3000}
        )
        assert ack["status"] == "ok", ack
    forwarded = await ext.next_request(predicate=lambda p: p["requestId"] == "r5")
    context = forwarded["context"]
    assert sum(len(orjson.dumps(m)) for m in context) <= 10_000
    assert [m["requestId"] for m in context] == ["r3", "r4", "r5"]  # the newest that fit
