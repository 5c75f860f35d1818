"""The SDK after a connection drops: answers resumed with the server's stream
log, or settled from the history without it; an extension logging in again."""

from __future__ import annotations

import asyncio

import pytest

from newage.sdk import Answer, Delta, Request
from tests.helpers.sdk import drop, slow_reconnect, tokens
from tests.helpers.wait import eventually

WITH_LOG = dict(streamCoalesceMs=0)
WITHOUT_LOG = dict(streamCoalesceMs=0, streamLogMaxBytes=0)
TEXT = "one, two, three, four."


async def across_a_drop(
    sdk, *, ends_while_away: bool, replayed: bool
) -> tuple[list[Delta], Answer]:
    """A streamed answer whose client drops after the first piece; the next
    two go out while it is away, the last one before or after it is back
    (then, when ``replayed``, only once the missed ones came again)."""
    away, back, sent_away = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def parts(request: Request):
        yield "one, "
        await away.wait()
        yield "two, "
        yield "three, "
        sent_away.set()
        if not ends_while_away:
            await back.wait()
        yield "four."

    ext = await sdk.extension(parts)
    web = await sdk.client()
    slow_reconnect(web)
    answer = await web.ask("count")
    deltas = [await anext(answer)]
    await drop(web)
    away.set()
    await asyncio.wait_for(sent_away.wait(), 5)
    if ends_while_away:
        await eventually(lambda: ext.served == 1)
    else:
        await eventually(lambda: web.connection.connected, timeout=10)
        if replayed:
            deltas.append(await anext(answer))  # what was missed comes before the rest
        back.set()
    deltas += [d async for d in answer]
    assert answer.status == "completed" and not answer.gap
    assert "".join(d.text for d in deltas) == answer.text == TEXT
    return deltas, answer


@pytest.mark.parametrize("server_settings", [WITH_LOG])
@pytest.mark.parametrize("ends_while_away", [False, True])
async def test_missed_chunks_are_replayed_in_order_with_their_seq(sdk, ends_while_away):
    deltas, _ = await across_a_drop(sdk, ends_while_away=ends_while_away, replayed=True)
    assert [(d.text, d.seq) for d in deltas] == [
        ("one, ", 1),
        ("two, ", 2),
        ("three, ", 3),
        ("four.", 4),
    ]


@pytest.mark.parametrize("server_settings", [WITHOUT_LOG])
@pytest.mark.parametrize("ends_while_away", [False, True])
async def test_without_a_replay_the_missed_text_comes_whole_and_exact(sdk, ends_while_away):
    """No stream log: chunks after the hole wait, and the end's text (live, or
    the history's for an answer that ended while away) fills it as one delta."""
    deltas, _ = await across_a_drop(sdk, ends_while_away=ends_while_away, replayed=False)
    assert [(d.text, d.seq) for d in deltas] == [("one, ", 1), ("two, three, four.", None)]


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
    assert answer.epoch
    await drop(web)
    go_on.set()
    await eventually(lambda: ext.served == 1)
    await server.restart()
    rest = [d async for d in answer]
    assert first.text + "".join(d.text for d in rest) == answer.text == "kept in the history."
    assert answer.status == "completed"
    assert [d.seq for d in rest] == [None]  # from the history, not a replay


async def test_an_extension_whose_key_was_replaced_logs_in_again_after_a_drop(sdk, server):
    ext = await sdk.extension(tokens("still here"))
    old_key = ext.key
    await server.app.keys.create("SillyTavern-1")  # replaces every key; the socket stays
    await ext.connection.sio.eio.ws.close()
    await eventually(lambda: ext.key != old_key and ext.connection.connected, timeout=20)
    web = await sdk.client()
    assert await web.complete("there?", timeout=10) == "still here"
