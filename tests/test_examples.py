"""The examples run against a real server: the room watcher, the bot loop
and the console chat, each as its own process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from newage.protocol.names import ClientKind
from newage.sdk import Request
from tests.helpers.sdk import tokens

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Example:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line(self, contains: str, timeout: float = 20) -> str:
        """The next output line containing ``contains`` (earlier ones are kept)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                assert raw, f"the example ended; it printed {self.lines}"
                self.lines.append(raw.decode().rstrip("\n"))
                if contains in self.lines[-1]:
                    return self.lines[-1]

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()


@asynccontextmanager
async def example(
    name: str, server, client_id: str, kind=ClientKind.CLIENT, *args: str
) -> AsyncIterator[Example]:
    key = await server.client(client_id, kind)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / name), "--server", server.url,
        "--client-id", client_id, f"--key={key}", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield Example(proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_the_room_watcher_shows_requests_and_answers(server, sdk):
    await sdk.extension(tokens("Fine, ", "thanks."))
    async with example("room_watcher.py", server, "admin", ClientKind.MONITOR) as watcher:
        await watcher.line("watching")
        web = await sdk.client()
        assert await web.complete("How are you?", timeout=10) == "Fine, thanks."
        await watcher.line("[web] web: How are you?")
        await watcher.line("[web] SillyTavern-1 finished (completed, 13 characters)")
        await watcher.line("[web] SillyTavern-1: Fine, thanks.")


async def test_the_bot_loop_answers_each_channel_and_passes_its_fields(server, sdk):
    seen: list[dict] = []

    async def answer(request: Request) -> str:
        seen.append(request.current)
        return f"re: {request.text}"

    await sdk.extension(answer)
    async with example("discord_bot.py", server, "bot") as bot:
        await bot.line("bot ready")
        await bot.send("#general ann: !ask what is newage?")
        assert await bot.line("-> #general") == "-> #general: @ann: re: what is newage?"
        await bot.send("#random bob: just chatting")  # not for the bot
        await bot.send("#random bob: !ask and you?")
        assert await bot.line("-> #random") == "-> #random: @bob: re: and you?"
    assert [(s["channel"], s["author"]) for s in seen] == [("general", "ann"), ("random", "bob")]


async def test_the_console_chat_streams_an_answer(server, sdk):
    await sdk.extension(tokens("one ", "two"))
    async with example("console_chat.py", server, "me") as chat:
        await chat.line("connected")
        await chat.send("count")
        assert await chat.line("[") == "[completed]"
        assert chat.lines[-2] == "one two"
        await chat.send("/history")
        await chat.line("SillyTavern-1: one two")
        await chat.send("/quit")
        assert await asyncio.wait_for(chat.proc.wait(), 10) == 0
