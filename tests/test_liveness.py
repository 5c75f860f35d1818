"""Liveness: stalled requests, the extension heartbeat, extension states, and
resuming an OpenAI-compatible stream with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect, fake_extension
from tests.test_openai import EXT, HELLO, api_key, data_of, sse_events


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


def labels(peer, rid):
    return [
        p["status"] for p in peer.received("/llm", "REQUEST_STATUS_UPDATE") if p["requestId"] == rid
    ]


@pytest.mark.parametrize("server_settings", [dict(stallTimeout=300, streamCoalesceMs=0)])
async def test_a_stalled_extension_is_reported_once_then_processing_again(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1"}))
    await ext.next_request()
    output = await ext.stream(["Hel"], request_id="r1")
    stalled = await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "stalled")
    assert stalled["requestId"] == "r1" and stalled["target"] == EXT
    await ext.token(output, "lo", first=False, request_id="r1", final=True)
    await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    assert labels(web, "r1") == ["processing", "processing"]  # once stalled, once again


HEARTBEAT = dict(heartbeatInterval=200, heartbeatTimeout=300)


@pytest.mark.parametrize("server_settings", [HEARTBEAT])
async def test_a_heartbeat_dead_extension_gets_no_requests(server, peers):
    ext = await fake_extension(server, peers)
    boss = await admin(server, peers)
    web = await connect(server, peers, "web")
    frozen = asyncio.Event()

    async def stuck(_data):  # a page whose script no longer runs: no ack
        await frozen.wait()

    ext.peer.sio.on("PING_EXTENSION", stuck, namespace="/llm")

    async def state():
        ack = ok(await boss.call("/llm", "GET_EXTENSIONS_STATE", {}))
        return next(e for e in ack["extensions"] if e["identity"] == EXT)

    for _ in range(100):
        if not (await state())["available"]:
            break
        await asyncio.sleep(0.05)
    refused = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1"})
    assert refused["status"] == "error" and refused["code"] == "unavailable", refused
    assert "heartbeat" in refused["message"]
    key = await api_key(server)
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        body = {"model": "auto", "messages": HELLO}
        response = await http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 503 and "Retry-After" in response.headers
        models = (await http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})).json()
    listed = next(m for m in models["data"] if m["id"] == EXT)
    assert listed["available"] is False and listed["state"] == "idle"

    # it answers again: available again
    frozen.set()
    ext.peer.sio.handlers["/llm"].pop("PING_EXTENSION")
    for _ in range(100):
        if (await state())["available"]:
            break
        await asyncio.sleep(0.05)
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r2"}))
    assert (await ext.next_request())["requestId"] == "r2"
    now = await state()
    assert now["state"] == "generating" and now["inFlight"] == 1 and now["lastHeartbeatAt"]
    refused = await web.call("/llm", "GET_EXTENSIONS_STATE", {})
    assert refused["code"] == "forbidden", refused


async def test_a_request_waiting_for_an_extension_that_leaves_fails_at_once(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r1"}))
    queued = ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "r2"}))
    assert queued["position"] == 1
    await ext.peer.close()
    failed = await web.next(
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == "r2" and p["status"] == "failed",
    )
    assert failed["message"] == f"Extension {EXT} disconnected."


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])
async def test_an_api_stream_resumes_with_last_event_id(server, peers):
    ext = await fake_extension(server, peers)
    key = await api_key(server)
    other = await api_key(server, "other")
    await server.trust("other", ClientKind.CLIENT)
    auth = {"Authorization": f"Bearer {key}", "X-Newage-Resumable": "1"}
    body = {"model": EXT, "messages": HELLO, "stream": True}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth) as first:
            request = await ext.next_request()
            output = await ext.stream(["ab"], request_id=request["requestId"])
            lines = first.aiter_lines()
            seen = []
            while len([x for x in seen if x.startswith("data: ")]) < 2:
                seen.append(await anext(lines))
        # the caller went away: with the header the answer goes on
        rid = request["requestId"]
        await ext.token(output, "cdefghij", first=False, request_id=rid, final=True)
        assert not ext.peer.received("/llm", "CANCEL_REQUEST")
        last_id = [x for x in seen if x.startswith("id: ")][-1][4:]
        url = f"/v1/chat/completions/{rid}/stream"
        async with http.stream("GET", url, headers={**auth, "Last-Event-ID": last_id}) as again:
            assert again.status_code == 200
            raw = "".join([t async for t in again.aiter_text()])
        events = sse_events(raw)
        assert events[-1] == "data: [DONE]"
        pieces = [json.loads(data_of(e)) for e in events[:-1]]
        text = "".join(p["choices"][0]["delta"].get("content", "") for p in pieces)
        first_piece = json.loads(next(x for x in seen if x.startswith("data: "))[6:])
        before = "".join(
            json.loads(x[6:])["choices"][0]["delta"].get("content", "")
            for x in seen
            if x.startswith("data: ")
        )
        assert first_piece["choices"][0]["delta"]["role"] == "assistant"
        assert before + text == "abcdefghij"
        ids = [int(e.split("\n")[0][4:]) for e in events if e.startswith("id: ")]
        assert ids == list(range(int(last_id) + 1, int(last_id) + 1 + len(ids)))
        # from the start: the whole answer; someone else: not found
        whole = await http.get(url, headers={"Authorization": f"Bearer {key}"})
        datas = [json.loads(data_of(e)) for e in sse_events(whole.text)[:-1]]
        assert "".join(d["choices"][0]["delta"].get("content", "") for d in datas) == "abcdefghij"
        hidden = await http.get(url, headers={"Authorization": f"Bearer {other}"})
        assert hidden.status_code == 404
        bad = await http.get(url, headers={"Authorization": f"Bearer {key}", "Last-Event-ID": "x"})
        assert bad.status_code == 400


@pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0, maxStreamReadersPerClient=2)])
async def test_stream_readers_of_one_client_are_bounded(server, peers):
    ext = await fake_extension(server, peers)
    key = await api_key(server)
    auth = {"Authorization": f"Bearer {key}", "X-Newage-Resumable": "1"}
    body = {"model": EXT, "messages": HELLO, "stream": True}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth) as first:
            request = await ext.next_request()
            rid = request["requestId"]
            output = await ext.stream(["ab"], request_id=rid)
            lines = first.aiter_lines()
            while not (await anext(lines)).startswith("data: "):
                pass
        url = f"/v1/chat/completions/{rid}/stream"

        async def reader():
            stream = http.stream("GET", url, headers=auth)
            response = await stream.__aenter__()
            assert response.status_code == 200
            lines = response.aiter_lines()
            while not (await anext(lines)).startswith("data: "):
                pass  # the replay arrived: the reader is open and counted
            # (the line iterator is returned too: dropping it closes the response)
            return stream, response, lines

        readers = [await reader(), await reader()]
        refused = await http.get(url, headers=auth)
        assert refused.status_code == 429, refused.text[:300]
        assert "maxStreamReadersPerClient" in refused.json()["error"]["message"]
        # a reader that leaves frees its place
        await readers[0][0].__aexit__(None, None, None)
        for _ in range(50):
            again = http.stream("GET", url, headers=auth)
            response = await again.__aenter__()
            if response.status_code == 200:
                break
            await again.__aexit__(None, None, None)
            await asyncio.sleep(0.05)
        assert response.status_code == 200
        # the answer ends: the readers still open see it end and free theirs
        await ext.token(output, "cd", first=False, request_id=rid, final=True)
        rest = "".join([t async for t in response.aiter_text()])
        assert rest.rstrip().endswith("data: [DONE]")
        await again.__aexit__(None, None, None)
        await readers[1][0].__aexit__(None, None, None)
        for _ in range(50):
            whole = await http.get(url, headers=auth)
            if whole.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert whole.status_code == 200
