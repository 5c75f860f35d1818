"""A console chat: each line you type is a request, the answer streams back.

    python examples/console_chat.py --client-id me --key=KEY [--room R] [--target EXT]

Lines starting with ``/`` are commands: ``/rooms``, ``/history``, ``/quit``.
"""

from __future__ import annotations

import asyncio
import sys

from common import client, parser
from newage.sdk import NewAgeError


async def lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main() -> None:
    p = parser("Chat with an extension from the console.")
    p.add_argument("--room", help="the room to talk in (default: your own)")
    p.add_argument("--target", help="the extension to ask (default: the server picks)")
    args = p.parse_args()
    stdin = await lines()
    async with client(args) as chat:
        print("connected; type a message, /rooms, /history or /quit", flush=True)
        while line := (await stdin.readline()).decode().strip():
            if line == "/quit":
                break
            try:
                if line == "/rooms":
                    for room in await chat.rooms():
                        print(" ", room.get("name") or room.get("roomName"))
                elif line == "/history":
                    for message in await chat.messages(args.room or chat.identity):
                        print(f"  {message.get('identity')}: {message.get('message')}")
                else:
                    answer = await chat.ask(line, room=args.room, target=args.target)
                    async for delta in answer:
                        print(delta.text, end="", flush=True)
                    print(f"\n[{answer.status}]", flush=True)
            except NewAgeError as exc:
                print(f"error: {exc}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
