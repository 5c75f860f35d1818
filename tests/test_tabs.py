"""Several tabs of one extension: each request is answered exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.actors import connect, fake_extension
from tests.helpers.node import NodeScript, start_node
from tests.helpers.wait import eventually


async def flushed(tab: NodeScript) -> list[str]:
    """The requests the tab got, after a round trip that all of them precede."""
    await tab.send("flush")
    while True:
        line = await tab.line()
        if "flushed" in line:
            handled: list[str] = line["handled"]
            return handled


@pytest.mark.node
async def test_two_tabs_of_the_real_extension_answer_each_request_once(server, peers):
    async with await start_node("extension_tab.mjs", server.url, "SillyTavern-8000", "A") as a:
        assert await a.line() == {"ready": True, "tab": "A", "status": "ok"}
        async with await start_node("extension_tab.mjs", server.url, "SillyTavern-8000", "B") as b:
            # the second tab's login gets a key of its own; tab A keeps working
            assert await b.line() == {"ready": True, "tab": "B", "status": "warning"}
            web = await connect(server, peers, "web")
            for n in range(3):
                ack = await web.call(
                    "/llm", "LLM_REQUEST", {"requestId": f"r{n}", "message": f"m{n}"}
                )
                assert ack["targets"] == ["SillyTavern-8000"], ack
                await web.next("/llm", "LLM_RESPONSE", lambda p, n=n: p["requestId"] == f"r{n}")
            got_a, got_b = await flushed(a), await flushed(b)
            assert sorted(got_a + got_b) == ["r0", "r1", "r2"], (got_a, got_b)
            await web.call("/llm", "UNKNOWN_EVENT", {})  # every answer relayed by now
            responses: list[Any] = web.received("/llm", "LLM_RESPONSE")
            assert responses == [], responses  # nothing beyond the three taken above
            # the tab that did not answer is still connected with its own key
            assert len(server.app.presence.full_sids("SillyTavern-8000", "/llm")) == 2


async def test_a_closing_tab_fails_what_it_was_sent_and_the_other_takes_over(server, peers):
    tab1 = await fake_extension(server, peers)
    tab2 = await fake_extension(server, peers)
    web = await connect(server, peers, "web")
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "q1", "message": "hi"})
    assert ack["targets"] == ["SillyTavern-1"]
    await eventually(lambda: len(tab1.requests()) + len(tab2.requests()) == 1)
    chosen, other = (tab1, tab2) if tab1.requests() else (tab2, tab1)
    await chosen.peer.close()
    failed = await web.next(
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == "q1" and p["status"] == "failed",
    )
    assert "disconnected" in str(failed)
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "q2", "message": "again"})
    request = await other.next_request()
    assert request["requestId"] == "q2"
    await other.message("done")
    response = await web.next("/llm", "LLM_RESPONSE", lambda p: p["requestId"] == "q2")
    assert response["data"] == "done"
