"""Emoji and other characters outside the BMP survive streaming: the real
extension slices tokens by UTF-16 code units, so the halves of a surrogate
pair can arrive in different sub-chunks (and even different tokens)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.actors import connect, fake_extension
from tests.helpers.node import start_node

ASTRAL = "hi 😀🎉 𝄞 ok 👍🏽!"


@pytest.mark.parametrize("mode", ["polling", "websocket"])
@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0), dict(streamCoalesceMs=10)])
async def test_js_extension_streams_astral_characters_intact(server, peers, mode):
    async with await start_node(
        "extension_stream.mjs", server.url, mode, "SillyTavern-8000", "1"
    ) as node:
        assert await node.line() == {"ready": True}
        web = await connect(server, peers, "web")
        await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": ASTRAL})
        end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
        want = f"You said: {ASTRAL}."
        assert end["data"] == want and end["status"] == "completed"
        chunks = web.received("/llm", "SERVER_STREAM_DATA")
        # every live event is a valid string on its own: no lone halves
        assert all(c["data"].encode("utf-8") for c in chunks)
        assert "".join(c["data"] for c in chunks) == want
        response = await web.next("/llm", "LLM_RESPONSE", timeout=10)
        assert response["data"] == want
        stored = [
            m.body for m in await server.app.store.latest_messages("web", 5) if m.kind == "response"
        ]
        assert stored[-1]["data"] == want
        result = await node.result(timeout=20)
    assert result["ok"], result


def js_units(text: str) -> str:
    """``text`` as JavaScript sees it: one character per UTF-16 code unit."""
    raw = text.encode("utf-16-le")
    return "".join(chr(int.from_bytes(raw[i : i + 2], "little")) for i in range(0, len(raw), 2))


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_halves_are_joined_on_the_fast_and_the_full_path(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "go"})
    await ext.next_request()
    output_id = str(uuid.uuid4())
    # fast path: the Python client's JSON escapes each lone half as \\udXXX
    await ext.stream([js_units("a😀"), js_units("🎉b")], output_id=output_id)
    # full path: a chunk with an ack id never takes the fast path
    base = {"streamId": "s-full", "outputId": output_id}
    await ext.peer.emit("/llm", "CLIENT_STREAM_START", {"type": 1, "numStreams": 2, **base})
    half = js_units("𝄞")
    for index, part in enumerate((half[0], half[1] + "c")):
        ack = await ext.peer.call(
            "/llm",
            "CLIENT_STREAM_DATA_MIDDLE",
            {"type": 5, "chunkIndex": index, "data": part, **base},
        )
        assert ack["status"] == "ok", ack
    await ext.peer.emit("/llm", "CLIENT_STREAM_END", {"type": 3, "final": True, **base})
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["data"] == "a😀🎉b𝄞c"
    live = [c["data"] for c in web.received("/llm", "SERVER_STREAM_DATA")]
    assert "".join(live) == end["data"]
    stored = [m.body for m in await server.app.store.latest_messages("web", 5)]
    assert stored[-1]["data"] == "a😀🎉b𝄞c"


async def test_lone_halves_elsewhere_become_replacement_characters(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "x\ud83d y"})
    assert ack["status"] == "ok", ack
    request = await ext.next_request()
    assert request["message"] == "x\ufffd y"
    # a stream whose last half never gets its partner ends with U+FFFD too
    await ext.stream(["ok\ud83d"], final=True)
    end = await web.next("/llm", "SERVER_STREAM_END")
    assert end["data"] == "ok\ufffd"
    assert "".join(c["data"] for c in web.received("/llm", "SERVER_STREAM_DATA")) == "ok\ufffd"
