"""A Discord-style bot loop without Discord: a stub transport on stdin/stdout.

    python examples/discord_bot.py --client-id bot --key=KEY

Type lines like ``#general ann: !ask what is newage?``; the bot answers
``-> #general @ann: ...``. ``!cancel`` stops the channel's running answer.
A real bot swaps :class:`StubTransport` for its chat library; the loop stays.
Each message is handled in its own task, so a long answer never blocks
the others.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from common import client, parser
from newage.sdk import Answer, Client, NewAgeError

LINE = re.compile(r"#(?P<channel>\S+) (?P<author>[^:]+): (?P<text>.*)")


@dataclass
class Incoming:
    channel: str
    author: str
    text: str


class Transport(Protocol):
    def messages(self) -> AsyncIterator[Incoming]: ...
    async def send(self, channel: str, text: str) -> None: ...


class StubTransport:
    async def messages(self) -> AsyncIterator[Incoming]:
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while raw := await reader.readline():
            if match := LINE.match(raw.decode().strip()):
                yield Incoming(**match.groupdict())

    async def send(self, channel: str, text: str) -> None:
        print(f"-> #{channel}: {text}", flush=True)


class Bot:
    def __init__(self, newage: Client, transport: Transport) -> None:
        self.newage = newage
        self.transport = transport
        self.running: dict[str, Answer] = {}  # channel -> its answer under way
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async for message in self.transport.messages():
            task = asyncio.create_task(self.handle(message))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await asyncio.gather(*self.tasks)

    async def handle(self, message: Incoming) -> None:
        channel = message.channel
        try:
            if message.text == "!cancel" and channel in self.running:
                await self.newage.cancel(self.running[channel].request_id)
            elif message.text.startswith("!ask "):
                # channel and author travel with the request (currentRequest)
                answer = await self.newage.ask(
                    message.text[5:], channel=channel, author=message.author
                )
                self.running[channel] = answer
                text = await answer.result()
                await self.transport.send(channel, f"@{message.author}: {text}")
        except NewAgeError as exc:
            await self.transport.send(channel, f"@{message.author}: sorry, {exc.message}")
        finally:
            if self.running.get(channel) is not None and self.running[channel].done:
                del self.running[channel]


async def main() -> None:
    args = parser("A chat bot loop on a stub transport.").parse_args()
    async with client(args) as newage:
        print("bot ready", flush=True)
        await Bot(newage, StubTransport()).run()


if __name__ == "__main__":
    asyncio.run(main())
