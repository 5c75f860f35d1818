"""Responses from the extension's real wire protocol: streams, non-stream
messages, finalization, failures and ordering."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from tests.helpers.actors import admin, connect, fake_extension
from tests.helpers.fake_extension import split5
from tests.helpers.wait import settle

TOKENS = ["Hello", ", wor", "ld! ", "", "How are you", "?"]


async def setup(server, peers, **kw):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "Hi", **kw})
    assert ack["status"] == "ok", ack
    await ext.next_request()
    return ext, web


def stream_text(peer, request_id="r1"):
    chunks = [
        p for p in peer.received("/llm", "SERVER_STREAM_DATA") if p["requestId"] == request_id
    ]
    return "".join(c["data"] for c in chunks), chunks


@pytest.mark.parametrize("server_settings", [dict(streamFinalizeIdleMs=300, streamCoalesceMs=0)])
async def test_tokens_are_relayed_in_order_and_finalized_by_idle_time(server, peers):
    ext, web = await setup(server, peers)
    output_id = await ext.stream(TOKENS)  # no requestId, like the real extension
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=3)
    text, chunks = stream_text(web)
    assert text == "".join(TOKENS) == end["data"]
    assert (
        end["status"] == "completed" and end["outputId"] == output_id and end["requestId"] == "r1"
    )
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert all(c["data"] for c in chunks)  # empty sub-chunks are not relayed
    # without coalescing: one event per non-empty sub-chunk, as sent
    sent = [(i, p) for t in TOKENS for i, p in enumerate(split5(t)) if p]
    assert [(c["chunkIndex"], c["data"]) for c in chunks] == sent
    assert all(c["chunks"] == 1 for c in chunks)
    assert chunks[0]["type"] == 4 and chunks[0]["source"] == "SillyTavern-1"
    response = await web.next("/llm", "LLM_RESPONSE")
    assert (
        response["data"] == response["message"] == text and response["identity"] == "SillyTavern-1"
    )
    new = await web.next("/llm", "NEW_MESSAGE", lambda p: p["message"].get("isResponse"))
    recorded = new["message"]
    assert (
        recorded["data"] == text and recorded["fromLlm"] is True and recorded["incomplete"] is False
    )
    final = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    assert final["responseId"] == recorded["responseId"] and final["roomName"] == "web"
    statuses = [p["status"] for p in web.received("/llm", "REQUEST_STATUS_UPDATE")]
    assert statuses == ["processing"]  # the one before completion, once


@pytest.mark.parametrize("server_settings", [dict(extensionConcurrency=2)])
async def test_a_new_output_id_finalizes_the_previous_one(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    for rid in ("r1", "r2"):
        await web.call("/llm", "LLM_REQUEST", {"requestId": rid, "message": rid})
    await ext.stream(["first ", "answer"])
    second = await ext.stream(["second"])
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["requestId"] == "r1" and end["data"] == "first answer"
    await ext.stop_processing()  # ends the second output at once
    end2 = await web.next("/llm", "SERVER_STREAM_END")
    assert end2["requestId"] == "r2" and end2["outputId"] == second and end2["data"] == "second"


async def test_final_flag_and_explicit_wrong_request_ids(server, peers):
    ext, web = await setup(server, peers)
    await ext.stream(["done"], request_id="not-a-request", final=True)
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["requestId"] == "r1" and end["data"] == "done"


async def test_non_stream_message_answers_and_supersedes_a_partial_stream(server, peers):
    ext, web = await setup(server, peers)
    await ext.stream(["partial"])
    await ext.message("The whole answer.")
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["data"] == "The whole answer." and end["status"] == "completed"
    legacy = await web.next("/llm", "message")
    assert (
        legacy["data"] == "The whole answer."
        and legacy["requestId"] == "r1"
        and legacy["type"] == 0
    )
    responses = [
        m for m in (await server.app.store.latest_messages("web", 10)) if m.kind == "response"
    ]
    assert [r.body["data"] for r in responses] == ["The whole answer."]  # partial text not recorded


async def test_plain_non_stream_answer(server, peers):
    ext, web = await setup(server, peers)
    await ext.message("Short answer.")
    response = await web.next("/llm", "LLM_RESPONSE")
    assert response["data"] == "Short answer." and response["requestId"] == "r1"
    assert web.received("/llm", "SERVER_STREAM_END") == []


async def test_connection_ping(server, peers):
    web = await connect(server, peers, "web")
    ack = await web.call(
        "/llm", "message", {"type": 0, "data": "Connection active?", "requestId": "p"}
    )
    assert ack["status"] == "ok"
    pong = await web.next("/llm", "message")
    assert (
        pong["data"] == "Yes,connection is fine."
        and pong["requestId"] == "p"
        and pong["source"] == "server"
    )


async def test_retry_replaces_a_chunk(server, peers):
    ext, web = await setup(server, peers)
    output_id = str(uuid.uuid4())
    stream_id = await ext.token(output_id, "abcde", first=True)
    await ext.retry_chunk(output_id, stream_id, 2, "X")
    await ext.token(output_id, "fg", first=False, final=True)
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["data"] == "abXdefg"


async def test_failed_chunk_and_extension_error_fail_the_request_visibly(server, peers):
    ext, web = await setup(server, peers)
    output_id = str(uuid.uuid4())
    stream_id = await ext.token(output_id, "partial text", first=True)
    await ext.fail_chunk(output_id, stream_id)
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["status"] == "failed" and end["data"] == "partial text"
    failed = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "failed")
    assert failed["requestId"] == "r1" and failed["message"]
    kept = [
        m.body for m in await server.app.store.latest_messages("web", 5) if m.kind == "response"
    ]
    assert kept[-1]["incomplete"] is True and kept[-1]["data"] == "partial text"
    # ERROR from the extension
    await web.call("/llm", "LLM_REQUEST", {"requestId": "r2", "message": "again"})
    await ext.next_request()
    await ext.error("生成文本时出错")
    error = await web.next("/llm", "ERROR", lambda p: p.get("requestId") == "r2")
    assert error["message"] == "生成文本时出错" and error["error"] == {"x": 1}
    status = await web.next(
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == "r2" and p["status"] == "failed",
    )
    assert status["message"] == "生成文本时出错"


async def test_an_error_for_an_already_failed_request_is_not_forwarded_again(server, peers):
    ext, web = await setup(server, peers)
    await ext.error("first failure")
    await web.next("/llm", "ERROR", lambda p: p.get("requestId") == "r1")
    await web.next(
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == "r1" and p["status"] == "failed",
    )
    # the extension repeats itself for the same request, naming it
    ack = await ext.peer.call(
        "/llm", "ERROR", {"type": "ERROR", "message": "again", "error": None, "requestId": "r1"}
    )
    assert ack["status"] == "ok" and ack["message"] == "Request already finished.", ack
    await settle(web, "/llm")
    # (next() took the first ones off the list)
    assert [p for p in web.received("/llm", "ERROR") if p.get("requestId") == "r1"] == []
    updates = web.received("/llm", "REQUEST_STATUS_UPDATE")
    assert [p for p in updates if p["status"] == "failed"] == []


async def test_disconnect_mid_request_fails_within_seconds_keeping_partial_text(server, peers):
    ext, web = await setup(server, peers)
    await web.call("/llm", "LLM_REQUEST", {"requestId": "r2", "message": "queued"})
    await ext.stream(["half an ans"])
    await ext.peer.close()
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=3)
    assert end["status"] == "failed" and end["data"] == "half an ans"
    failures = [
        await web.next(
            "/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "failed", timeout=3
        )
        for _ in range(2)
    ]
    assert {f["requestId"] for f in failures} == {"r1", "r2"}
    assert all("disconnected" in f["message"] for f in failures)


@pytest.mark.parametrize("server_settings", [dict(requestTimeout=400)])
async def test_request_timeout(server, peers):
    ext, web = await setup(server, peers)
    failed = await web.next(
        "/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "failed", timeout=3
    )
    assert "did not answer in time" in failed["message"]
    # a late answer to a timed-out request is dropped, not recorded
    await ext.message("too late")
    await settle(ext.peer, "/llm")  # the answer has been handled...
    await settle(web, "/llm")  # ...and whatever it sent web has arrived
    assert web.received("/llm", "LLM_RESPONSE") == []
    assert web.received("/llm", "message") == []
    responses = [
        m for m in await server.app.store.latest_messages("web", 10) if m.kind == "response"
    ]
    assert responses == []


async def test_multi_target_completes_when_every_target_answered(server, peers):
    one = await fake_extension(server, peers, "SillyTavern-1")
    two = await fake_extension(server, peers, "SillyTavern-2")
    web = await connect(server, peers, "web")
    await web.call(
        "/llm",
        "LLM_REQUEST",
        {"requestId": "m", "message": "both", "target": ["SillyTavern-1", "SillyTavern-2"]},
    )
    await one.next_request()
    await two.next_request()
    await one.message("from one")
    first = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p.get("responseId"))
    assert first["status"] == "processing"
    await two.message("from two")
    second = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    assert second["requestId"] == "m"
    texts = sorted(r["data"] for r in web.received("/llm", "LLM_RESPONSE"))
    assert texts == ["from one", "from two"]


# no coalescing window: anything relayed would be sent while its event is handled
@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_only_extensions_answer_and_unsolicited_output_is_dropped(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ack = await web.call(
        "/llm", "CLIENT_STREAM_START", {"type": 1, "streamId": "s", "outputId": "o"}
    )
    assert ack["message"] == "Only extensions may send responses."
    await ext.stream(["nobody asked"], final=True)
    await ext.message("nobody asked either")
    await settle(ext.peer, "/llm")
    await settle(web, "/llm")
    for event in ("SERVER_STREAM_DATA", "SERVER_STREAM_END", "LLM_RESPONSE"):
        assert web.received("/llm", event) == [], event
    bad = await ext.peer.call(
        "/llm", "CLIENT_STREAM_START", {"type": 2, "streamId": "s", "outputId": "o"}
    )
    assert bad["message"] == "Invalid stream type 2 (expected 1)."


async def test_member_status_for_processing_and_typing(server, peers):
    boss = await admin(server, peers)
    ext, web = await setup(server, peers)
    processing = await web.next(
        "/llm", "MEMBER_STATUS_UPDATE", lambda p: p["identity"] == "SillyTavern-1"
    )
    assert processing["status"] == "processing" and processing["roomName"] == "web"
    await ext.message("ok")
    idle = await web.next(
        "/llm", "MEMBER_STATUS_UPDATE", lambda p: p["identity"] == "SillyTavern-1"
    )
    assert idle["status"] == "idle"
    await web.emit("/llm", "START_TYPING", {"targetRoom": "web"})
    typing = await web.next("/llm", "MEMBER_STATUS_UPDATE", lambda p: p["identity"] == "web")
    assert typing["status"] == "typing"
    assert (await boss.next("/llm", "MEMBER_STATUS_UPDATE", lambda p: p["status"] == "typing"))[
        "identity"
    ] == "web"
    await web.emit("/llm", "STOP_TYPING")
    assert (await web.next("/llm", "MEMBER_STATUS_UPDATE", lambda p: p["identity"] == "web"))[
        "status"
    ] == "idle"
    denied = await web.call("/llm", "START_TYPING", {"targetRoom": "admin"})
    assert denied["status"] == "error"


async def test_start_processing_tells_the_requester_before_any_answer(server, peers):
    ext, web = await setup(server, peers)
    ack = await ext.peer.call("/llm", "START_PROCESSING", {"requestId": "r1", "targetRoom": "web"})
    assert ack["status"] == "ok", ack
    update = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["requestId"] == "r1")
    assert update["status"] == "processing"
    await ext.message("done", request_id="r1")
    done = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["requestId"] == "r1")
    assert done["status"] == "completed"  # and `processing` was not announced twice


async def test_fifty_concurrent_interleaved_streams_keep_their_order(server, peers):
    count = 50
    exts = [await fake_extension(server, peers, f"SillyTavern-{i}") for i in range(count)]
    web = await connect(server, peers, "web")
    texts = {}
    for i, ext in enumerate(exts):
        await web.call(
            "/llm", "LLM_REQUEST", {"requestId": f"q{i}", "message": "go", "target": ext.identity}
        )
    for ext in exts:
        await ext.next_request()

    async def speak(i, ext):
        rng = random.Random(i)
        tokens = [f"<{i}:{n}:{'x' * rng.randint(0, 9)}>" for n in range(30)]
        texts[f"q{i}"] = "".join(tokens)
        output_id = str(uuid.uuid4())
        for n, token in enumerate(tokens):
            await ext.token(output_id, token, first=n == 0, final=n == len(tokens) - 1)
            if rng.random() < 0.3:
                await asyncio.sleep(0)

    await asyncio.gather(*(speak(i, ext) for i, ext in enumerate(exts)))
    ends = [await web.next("/llm", "SERVER_STREAM_END", timeout=10) for _ in range(count)]
    for end in ends:
        relayed, chunks = stream_text(web, end["requestId"])
        assert relayed == texts[end["requestId"]] == end["data"]
        assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))


async def test_malformed_stream_events_get_errors_and_change_nothing(server, peers):
    """Well-formed stream events take a cheap path; anything else must still
    get the full path's clear errors (those events carry no ack)."""
    ext, web = await setup(server, peers)
    bad = [
        ("CLIENT_STREAM_START", {"type": 1, "streamId": 5, "outputId": "o"}, "streamId"),
        (
            "CLIENT_STREAM_START",
            {"type": 1, "streamId": "s", "outputId": "o", "numStreams": "x"},
            "numStreams",
        ),
        (
            "CLIENT_STREAM_DATA_MIDDLE",
            {"type": 6, "streamId": "s", "chunkIndex": 0, "data": "x"},
            "Invalid stream type 6",
        ),
        (
            "CLIENT_STREAM_DATA_MIDDLE",
            {"type": 5, "streamId": "s", "chunkIndex": -1, "data": "x"},
            "chunkIndex",
        ),
        (
            "CLIENT_STREAM_DATA_MIDDLE",
            {"type": 5, "streamId": "s", "chunkIndex": 0, "data": 7},
            "data",
        ),
        ("CLIENT_STREAM_DATA_LAST", ["not", "an", "object"], "expected an object"),
        ("CLIENT_STREAM_END", {"type": 3, "streamId": "s", "final": [1]}, "final"),
    ]
    for event, payload, needle in bad:
        await ext.peer.emit("/llm", event, payload)
        error = await ext.peer.next("/llm", "ERROR")
        assert needle in error["message"] and error["event"] == event, (event, error)
    # a client's stream events go the same way
    await web.emit("/llm", "CLIENT_STREAM_START", {"type": 1, "streamId": "s", "outputId": "o"})
    assert (await web.next("/llm", "ERROR"))["message"] == "Only extensions may send responses."
    # nothing was relayed, and a real answer still goes through
    assert web.received("/llm", "SERVER_STREAM_DATA") == []
    await ext.stream(["fine"], final=True)
    assert (await web.next("/llm", "SERVER_STREAM_END"))["data"] == "fine"


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=15)])
async def test_coalesced_chunks_keep_order_and_text(server, peers):
    ext, web = await setup(server, peers)
    tokens = [f"<{n}>" for n in range(60)]
    output_id = str(uuid.uuid4())
    for n, token in enumerate(tokens):
        await ext.token(output_id, token, first=n == 0)
        if n % 10 == 9:
            await asyncio.sleep(0.03)  # some windows close between tokens
    await ext.stop_processing()
    end = await web.next("/llm", "SERVER_STREAM_END")
    relayed, chunks = stream_text(web)
    assert relayed == end["data"] == "".join(tokens)
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert sum(c["chunks"] for c in chunks) == sum(1 for t in tokens for p in split5(t) if p)
    assert len(chunks) < 60  # joined: fewer events than tokens


@pytest.mark.parametrize("server_settings", [dict(streamFinalizeIdleMs=200)])
async def test_a_stalled_output_that_continues_stays_with_its_request(server, peers):
    ext, web = await setup(server, peers)
    await web.call("/llm", "LLM_REQUEST", {"requestId": "r2", "message": "next"})
    output_id = str(uuid.uuid4())
    await ext.token(output_id, "first part", first=True)
    first = await web.next("/llm", "SERVER_STREAM_END", timeout=3)  # ended by idle time
    assert first["requestId"] == "r1" and first["data"] == "first part"
    await ext.token(output_id, " and the rest", first=False, final=True)  # the stall ends
    more = await web.next("/llm", "SERVER_STREAM_END", timeout=3)
    assert more["requestId"] == "r1" and more["continued"] is True  # not r2
    assert more["data"] == " and the rest"
    chunks = [c for c in web.received("/llm", "SERVER_STREAM_DATA") if c["outputId"] == output_id]
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))  # seq goes on
    await ext.stream(["answer two"], final=True)
    assert (await web.next("/llm", "SERVER_STREAM_END", timeout=3))["requestId"] == "r2"


@pytest.mark.parametrize("server_settings", [{"maxPayloadBytes": 3_000_000}])
async def test_the_cheap_path_keeps_the_models_limits_under_a_larger_payload_limit(server, peers):
    """A larger ``maxPayloadBytes`` lets a frame through, but a chunk over the
    model's bound must still be refused, as the full path refuses it."""
    ext, web = await setup(server, peers)
    output_id = str(uuid.uuid4())
    await ext.peer.emit(
        "/llm", "CLIENT_STREAM_START", {"type": 1, "streamId": "s", "outputId": output_id}
    )
    huge = {"type": 5, "streamId": "s", "chunkIndex": 1, "data": "x" * 1_000_001}
    await ext.peer.emit("/llm", "CLIENT_STREAM_DATA_MIDDLE", huge)
    error = await ext.peer.next("/llm", "ERROR")
    assert "data" in error["message"] and error["event"] == "CLIENT_STREAM_DATA_MIDDLE"
    assert web.received("/llm", "SERVER_STREAM_DATA") == []
