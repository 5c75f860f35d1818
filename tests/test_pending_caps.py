"""Pending work is capped: LLM requests per client and per extension."""

from __future__ import annotations

import pytest

from tests.helpers.actors import connect, fake_extension


def ok(ack):
    assert ack["status"] == "ok", ack
    return ack


def full(ack):
    assert ack["status"] == "error" and ack["code"] == "queue_full", ack
    return ack


@pytest.mark.parametrize(
    "server_settings",
    [dict(maxPendingRequestsPerClient=3, maxPendingRequestsPerExtension=5)],
)
async def test_pending_llm_requests_are_capped_per_client_and_per_extension(server, peers):
    ext = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    for i in range(3):
        ok(await web.call("/llm", "LLM_REQUEST", {"requestId": f"w{i}", "message": "hi"}))
    before = await server.app.store.count_messages("web")
    refused = full(await web.call("/llm", "LLM_REQUEST", {"requestId": "w3", "message": "hi"}))
    assert refused["requestId"] == "w3" and "Too many requests in flight (3)" in refused["message"]
    assert await server.app.store.count_messages("web") == before  # nothing recorded
    # another client has its own allowance, until the extension's queue is full
    app = await connect(server, peers, "app")
    ok(await app.call("/llm", "LLM_REQUEST", {"requestId": "a0", "message": "hi"}))
    ok(await app.call("/llm", "LLM_REQUEST", {"requestId": "a1", "message": "hi"}))
    refused = full(await app.call("/llm", "LLM_REQUEST", {"requestId": "a2", "message": "hi"}))
    assert refused["message"] == "Extension SillyTavern-1 has too many requests waiting (5)."
    # an answer frees a place (the head of the extension's queue is w0)
    await ext.next_request()
    await ext.message("done")
    await web.next("/llm", "REQUEST_STATUS_UPDATE", lambda p: p["status"] == "completed")
    ok(await web.call("/llm", "LLM_REQUEST", {"requestId": "w3", "message": "hi"}))
    full(await web.call("/llm", "LLM_REQUEST", {"requestId": "w4", "message": "hi"}))
