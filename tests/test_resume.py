"""RESUME_STREAM: reconnects at random points, late joiners, restarts, bounds."""

from __future__ import annotations

import asyncio
import random

import pytest

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect, fake_extension, room
from tests.helpers.fake_extension import split5
from tests.helpers.node import start_node

FAST = dict(streamCoalesceMs=0, streamFinalizeIdleMs=60000)


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


class Assembler:
    """What a client does: apply a chunk only when its seq is the next one."""

    def __init__(self) -> None:
        self.last = 0
        self.text = ""

    def feed(self, payloads, request_id):
        for p in payloads:
            if p["requestId"] == request_id and p["seq"] == self.last + 1:
                self.last += 1
                self.text += p["data"]


def chunks(peer, request_id):
    return [p for p in peer.received("/llm", "SERVER_STREAM_DATA") if p["requestId"] == request_id]


@pytest.mark.parametrize("server_settings", [FAST])
async def test_resume_after_a_forced_disconnect_at_random_points(server, peers):
    ext = await fake_extension(server, peers)
    rng = random.Random(16)
    web = await connect(server, peers, "web")
    for trial in range(100):
        rid = f"t{trial}"
        tokens = [f"{trial}:{i} " + "x" * rng.randint(0, 6) for i in range(rng.randint(3, 9))]
        expected = "".join(part for t in tokens for part in split5(t) if part)
        ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": rid, "message": "go"}))
        await ext.next_request()
        cut = rng.randint(0, len(tokens) - 1)
        output = await ext.stream(tokens[:cut], request_id=rid) if cut else None
        await web.close()  # whatever arrived before this is all the old socket has
        mine = Assembler()
        mine.feed(chunks(web, rid), rid)

        async def rest(output=output, cut=cut, tokens=tokens, rid=rid):
            output_id = output or f"o-{rid}"
            for i, token in enumerate(tokens[cut:]):
                last = cut + i == len(tokens) - 1
                await ext.token(output_id, token, first=cut + i == 0, request_id=rid, final=last)
                if rng.random() < 0.3:
                    await asyncio.sleep(0)

        live = asyncio.create_task(rest())
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.01)
        web = await connect(server, peers, "web")
        resumed = ok(
            await web.call(
                "/llm",
                "RESUME_STREAM",
                {"requestId": rid, "afterSeq": mine.last, "epoch": ack["epoch"]},
            )
        )
        assert resumed["epoch"] == ack["epoch"]
        await live
        end = await web.next("/llm", "SERVER_STREAM_END", lambda p, r=rid: p["requestId"] == r)
        mine.feed(chunks(web, rid), rid)
        assert mine.text == expected == end["data"], (trial, mine.text, expected)
        assert mine.last == len([p for t in tokens for p in split5(t) if p])


@pytest.mark.parametrize("server_settings", [dict(FAST, mirrorToMonitors=False)])
async def test_late_joiners_get_the_replay_then_live_exactly_once(server, peers):
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers)
    web = await connect(server, peers, "web")
    await room(boss, "hall", {"web": "guest", "late": "guest"})
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "targetRoom": "hall"}))
    await ext.next_request()
    output = await ext.stream(["Hello", " wor"], request_id="r1")

    # an admin outside the room: replay, then live, nothing twice
    boss = await connect(server, peers, "auditor", ClientKind.MONITOR)
    ack = ok(await boss.call("/llm", "RESUME_STREAM", {"requestId": "r1", "afterSeq": 0}))
    sent = len([p for t in ("Hello", " wor") for p in split5(t) if p])
    assert ack["complete"] is False and ack["outputId"] == output and ack["replayed"] == sent
    assert ack["lastSeq"] == sent and ack["requestStatus"] == "processing"
    # a member that connects late
    late = await connect(server, peers, "late")
    ok(await late.call("/llm", "RESUME_STREAM", {"requestId": "r1"}))
    await ext.token(output, "ld", first=False, request_id="r1", final=True)
    for peer in (boss, late):
        end = await peer.next("/llm", "SERVER_STREAM_END")
        assert end["data"] == "Hello world"
    assert [p["seq"] for p in chunks(boss, "r1")] == list(range(1, sent + 3))
    assert "".join(p["data"] for p in chunks(boss, "r1")) == "Hello world"
    mine = Assembler()
    mine.feed(chunks(late, "r1"), "r1")
    assert mine.text == "Hello world"

    # after the end: the whole output and its end again, from any seq
    again = ok(await late.call("/llm", "RESUME_STREAM", {"requestId": "r1", "afterSeq": 1}))
    assert again["complete"] is True and again["replayed"] == sent + 1
    end = await late.next("/llm", "SERVER_STREAM_END")
    assert end["status"] == "completed"

    outsider = await connect(server, peers, "outsider")
    hidden = await outsider.call("/llm", "RESUME_STREAM", {"requestId": "r1"})
    assert hidden["code"] == "not_found", hidden
    for bad in ({"requestId": "r1", "afterSeq": -1}, {"requestId": "r1", "afterSeq": "2"}):
        refused = await web.call("/llm", "RESUME_STREAM", bad)
        assert refused["status"] == "error" and refused["message"].startswith("Invalid"), refused
    ahead = await web.call("/llm", "RESUME_STREAM", {"requestId": "r1", "afterSeq": 99})
    assert ahead["code"] == "stream_gone", ahead


@pytest.mark.parametrize("server_settings", [dict(FAST, streamLogMaxBytes=1000)])
async def test_a_resume_from_before_the_kept_chunks_is_refused(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1"}))
    await ext.next_request()
    await ext.stream(["abcde"] * 4, request_id="r1", final=True)  # 20 chunks of 201 bytes
    await web.next("/llm", "SERVER_STREAM_END")
    gone = await web.call("/llm", "RESUME_STREAM", {"requestId": "r1", "afterSeq": 0})
    assert gone["code"] == "stream_gone" and "seq 17..20" in gone["message"], gone
    tail = ok(await web.call("/llm", "RESUME_STREAM", {"requestId": "r1", "afterSeq": 16}))
    assert tail["replayed"] == 4


@pytest.mark.parametrize("server_settings", [FAST])
async def test_a_restart_changes_the_epoch_and_the_history_keeps_the_text(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ack = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1"}))
    await ext.next_request()
    await ext.stream(["Kept", " text"], request_id="r1", final=True)
    await web.next("/llm", "SERVER_STREAM_END")
    await server.restart()
    await server.trust("web", ClientKind.CLIENT)
    web = await connect(server, peers, "web")
    gone = await web.call(
        "/llm", "RESUME_STREAM", {"requestId": "r1", "afterSeq": 2, "epoch": ack["epoch"]}
    )
    assert gone["code"] == "stream_gone", gone
    assert (await web.call("/llm", "RESUME_STREAM", {"requestId": "r1"}))["status"] == "error"
    ok(await web.call("/llm", "GET_FULL_CONTEXT", {"roomName": "web"}))
    context = (await web.next("/llm", "UPDATE_CONTEXT"))["context"]
    assert [m["data"] for m in context if m.get("isResponse")] == ["Kept text"]


@pytest.mark.parametrize("server_settings", [dict(FAST, mirrorToMonitors=False)])
async def test_the_official_js_client_resumes_mid_stream(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1"}))
    await ext.next_request()
    output = await ext.stream(["abcde", "fghij"], request_id="r1")  # seq 1..10
    key = server.keys["web"]
    async with await start_node("resume.mjs", server.url, "web", key, "r1", "4") as node:
        ack = (await node.line())["ack"]
        assert ack["status"] == "ok" and ack["replayed"] == 6 and ack["lastSeq"] == 10, ack
        await ext.token(output, "klmno", first=False, request_id="r1", final=True)
        result = await node.result()
    assert result["text"] == "efghijklmno" and result["end"]["data"] == "abcdefghijklmno"
    assert result["seqs"] == list(range(5, 16))  # in the room from its connect: nothing new came
