"""Big history reads use bounded memory: OFFLINE_MESSAGES batches and
UPDATE_CONTEXT_PAGE pages are bounded in bytes, and the next one is read only
once the previous one went out to the reader."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid

import pytest
import websockets

from newage.datadir import DataDir
from tests.helpers.actors import connect
from tests.helpers.wait import eventually

SINCE = "2000-01-01T00:00:00.000Z"
BUDGET = 100_000


def fill(server, room: str, count: int, size: int) -> None:
    """``count`` requests of ``size`` characters in ``room``, written to the
    database directly (thousands over the wire would take minutes)."""
    conn = sqlite3.connect(DataDir.at(server.data_dir).db_path)
    rows = []
    for n in range(count):
        body = {"messageId": str(uuid.uuid4()), "n": n, "message": "m" * size}
        body["timestamp"] = f"2026-01-01T00:00:00.{n % 1000:03d}Z"
        rows.append((room, body["messageId"], "request", body["timestamp"], json.dumps(body)))
    conn.executemany(
        "INSERT INTO messages (room, message_id, kind, ts, body) VALUES (?, ?, ?, ?, ?)", rows
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("server_settings", [dict(historyPageBytes=BUDGET)])
async def test_offline_messages_come_in_bounded_batches(server, peers):
    web = await connect(server, peers, "web")
    fill(server, "web", 300, 2000)
    ack = await web.call("/llm", "GET_OFFLINE_MESSAGES", {"roomName": "web", "since": SINCE})
    assert ack["status"] == "ok" and ack["totalMessages"] == 300
    batches = web.received("/llm", "OFFLINE_MESSAGES")
    assert len(batches) > 5  # 600 kB in pages of at most 100 kB
    assert all(len(json.dumps(b["messages"])) <= BUDGET for b in batches)
    assert [b["hasMore"] for b in batches] == [True] * (len(batches) - 1) + [False]
    assert [m["n"] for b in batches for m in b["messages"]] == list(range(300))


@pytest.mark.parametrize(
    "server_settings", [dict(historyPageBytes=BUDGET, contextPageSize=200, contextSendDelay=0)]
)
async def test_context_pages_are_bounded_in_bytes_and_end_with_the_last(server, peers):
    web = await connect(server, peers, "web")
    fill(server, "web", 300, 2000)
    ack = await web.call("/llm", "GET_FULL_CONTEXT", {"roomName": "web"})
    assert ack["totalMessages"] == 300
    last = await web.next("/llm", "UPDATE_CONTEXT_PAGE", lambda p: p["isLastPage"], timeout=10)
    pages = [*web.received("/llm", "UPDATE_CONTEXT_PAGE"), last]  # next() took the last
    assert [p["pageNumber"] for p in pages] == list(range(1, len(pages) + 1))
    assert all(len(json.dumps(p["contextPage"])) <= BUDGET for p in pages)
    assert [m["n"] for p in pages for m in p["contextPage"]] == list(range(300))
    assert pages[-1]["totalPages"] == len(pages)


@pytest.mark.parametrize("server_settings", [dict(historyPageBytes=BUDGET)])
async def test_a_reader_that_stops_reading_holds_at_most_a_batch_or_two(server, peers):
    await connect(server, peers, "web")  # trusts web and makes its key and room
    fill(server, "web", 10_000, 2000)  # 20 MB
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(url, max_queue=1, max_size=None) as ws:
        assert (await ws.recv()).startswith("0")
        auth = {"clientId": "web", "key": server.keys["web"], "clientType": "web-app"}
        await ws.send("40/llm," + json.dumps(auth))
        assert (await ws.recv()).startswith("40/llm,")
        query = {"roomName": "web", "since": SINCE}
        await ws.send('42/llm,7["GET_OFFLINE_MESSAGES",' + json.dumps(query) + "]")

        def queued() -> int:
            return max((s.queue.qsize() for s in server.app.sio.eio.sockets.values()), default=0)

        # we read nothing: TCP buffers fill and the server's writer stalls
        await eventually(lambda: queued() >= 1, timeout=10)
        most, until = 0, time.monotonic() + 1
        while time.monotonic() < until:
            most = max(most, queued())
            await asyncio.sleep(0.01)
        assert most <= 2, most  # the other ~190 batches are still in the database
        # reading again, everything arrives, in order, then the ack
        numbers: list[int] = []
        while True:
            frame = await asyncio.wait_for(ws.recv(), 20)
            if frame == "2":
                await ws.send("3")
            elif frame.startswith("42/llm,"):
                event, payload = json.loads(frame[len("42/llm,") :])
                if event == "OFFLINE_MESSAGES":
                    numbers += [m["n"] for m in payload["messages"]]
            elif frame.startswith("43/llm,7"):
                assert json.loads(frame[len("43/llm,7") :])[0]["totalMessages"] == 10_000
                break
        assert numbers == list(range(10_000))
