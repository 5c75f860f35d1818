"""Resuming an SDK answer after a forced disconnect, with the server's stream log."""

from __future__ import annotations

import asyncio

import pytest

from newage.sdk import Request
from tests.helpers.sdk import drop, slow_reconnect
from tests.helpers.wait import eventually

NO_COALESCING = pytest.mark.parametrize("server_settings", [dict(streamCoalesceMs=0)])


@NO_COALESCING
async def test_the_missed_chunks_are_replayed_in_order_and_the_stream_goes_on_live(sdk):
    away, back, sent_away = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def parts(request: Request):
        yield "one, "
        await away.wait()
        yield "two, "
        yield "three (missed), "
        sent_away.set()
        await back.wait()
        yield "four."

    await sdk.extension(parts)
    web = await sdk.client()
    slow_reconnect(web)
    answer = await web.ask("count")
    first = await anext(answer)
    await drop(web)
    away.set()
    await asyncio.wait_for(sent_away.wait(), 5)
    await eventually(lambda: web.connection.connected, timeout=10)
    second = await anext(answer)  # replayed, with its own seq (not the end's catch-up)
    back.set()
    rest = [second, *[d async for d in answer]]
    assert [(d.text, d.seq) for d in [first, *rest]] == [
        ("one, ", 1),
        ("two, ", 2),
        ("three (missed), ", 3),
        ("four.", 4),
    ]
    assert answer.status == "completed" and answer.text == "one, two, three (missed), four."


@NO_COALESCING
async def test_an_answer_that_ended_while_away_is_replayed_to_its_end(sdk):
    go_on = asyncio.Event()

    async def parts(request: Request):
        yield "before, "
        await go_on.wait()
        yield "after, "
        yield "end."

    ext = await sdk.extension(parts)
    web = await sdk.client()
    slow_reconnect(web)
    answer = await web.ask("talk")
    first = await anext(answer)
    await drop(web)
    go_on.set()
    await eventually(lambda: ext.served == 1)
    rest = [d async for d in answer]
    assert [(d.text, d.seq) for d in [first, *rest]] == [
        ("before, ", 1),
        ("after, ", 2),
        ("end.", 3),
    ]
    assert answer.status == "completed"


async def test_after_a_server_restart_the_answer_is_read_from_the_history(sdk, server):
    """The restart lost the stream log (a new epoch): the resume is refused and
    the answer, finished before the restart, comes from the history."""
    go_on = asyncio.Event()

    async def parts(request: Request):
        yield "kept "
        await go_on.wait()
        yield "in the history."

    ext = await sdk.extension(parts)
    web = await sdk.client()
    slow_reconnect(web)
    answer = await web.ask("talk")
    first = await anext(answer)
    epoch = answer.epoch
    assert epoch
    await drop(web)
    go_on.set()
    await eventually(lambda: ext.served == 1)
    await server.restart()
    rest = [d async for d in answer]
    assert first.text + "".join(d.text for d in rest) == answer.text == "kept in the history."
    assert answer.status == "completed"
    assert [d.seq for d in rest] == [None]  # from the history, not a replay
