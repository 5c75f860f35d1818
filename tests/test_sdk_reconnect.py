"""The SDK client after its connection drops mid-answer."""

from __future__ import annotations

import asyncio

from newage.sdk import Request
from tests.helpers.sdk import drop, slow_reconnect, tokens
from tests.helpers.wait import eventually


async def test_an_answer_finished_while_away_is_settled_from_history(sdk):
    go_on = asyncio.Event()

    async def two_parts(request: Request):
        yield "before the drop, "
        await go_on.wait()
        yield "after it, "
        yield "and the end."

    ext = await sdk.extension(two_parts)
    web = await sdk.client()
    slow_reconnect(web)  # long enough for the answer to finish meanwhile
    answer = await web.ask("talk")
    first = await anext(answer)
    await drop(web)
    go_on.set()
    await eventually(lambda: ext.served == 1)

    rest = [d async for d in answer]
    assert answer.status == "completed"
    assert answer.text == "before the drop, after it, and the end."
    assert first.text + "".join(d.text for d in rest) == answer.text
    assert web.connection.connected


async def test_an_answer_still_streaming_after_the_reconnect_ends_exact(sdk):
    """Chunks after a hole wait for the order to be whole; the end's text fills the hole."""
    away, back, sent_away = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def three_parts(request: Request):
        yield "one, "
        await away.wait()
        yield "two (missed), "
        sent_away.set()
        await back.wait()
        yield "three."

    await sdk.extension(three_parts)
    web = await sdk.client()
    slow_reconnect(web)
    answer = await web.ask("count")
    first = await anext(answer)
    await drop(web)
    away.set()
    await asyncio.wait_for(sent_away.wait(), 5)
    await eventually(lambda: web.connection.connected, timeout=10)
    back.set()

    rest = [d async for d in answer]
    assert answer.status == "completed" and not answer.gap
    assert first.text + "".join(d.text for d in rest) == answer.text == "one, two (missed), three."


async def test_an_extension_whose_key_was_replaced_logs_in_again_after_a_drop(sdk, server):
    ext = await sdk.extension(tokens("still here"))
    old_key = ext.key
    await server.app.keys.create("SillyTavern-1")  # replaces every key; the socket stays
    await ext.connection.sio.eio.ws.close()
    await eventually(lambda: ext.key != old_key and ext.connection.connected, timeout=20)
    web = await sdk.client()
    assert await web.complete("there?", timeout=10) == "still here"
