"""Watch rooms: every message, answer, member and request status as it happens.

    python examples/room_watcher.py --client-id admin --key=KEY [--deltas]

An admin (a ``monitor`` trust entry) sees every room; anyone else the rooms
they are in.
"""

from __future__ import annotations

import asyncio

from common import client, parser
from newage.sdk import Delta, MemberStatus, RequestStatus, RoomMessage, StreamEnd


def show(event: object, deltas: bool) -> str | None:
    match event:
        case RoomMessage(room=room, identity=who, text=text):
            return f"[{room}] {who}: {text}"
        case StreamEnd(room=room, identity=who, status=status, text=text):
            return f"[{room}] {who} finished ({status}, {len(text)} characters)"
        case MemberStatus(room=room, identity=who, status=status):
            return f"[{room}] {who} is {status}"
        case RequestStatus(request_id=rid, status=status):
            return f"request {rid}: {status}"
        case Delta(room=room, text=text) if deltas:
            return f"[{room}] ... {text}"
    return None


async def main() -> None:
    p = parser("Print what happens in your rooms.")
    p.add_argument("--deltas", action="store_true", help="print streamed pieces too")
    args = p.parse_args()
    async with client(args) as watcher:
        events = watcher.events()
        rooms = [r.get("name") or r.get("roomName") for r in await watcher.rooms()]
        print(f"watching {len(rooms)} rooms", flush=True)
        async for event in events:
            line = show(event, args.deltas)
            if line is not None:
                print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
