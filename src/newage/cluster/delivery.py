"""The delivery streams between nodes: the writer that sends the other nodes
what this one queued for them, and the reader of this node's own stream.

``P:dlv:<node>`` is a node's delivery stream: what other nodes send it, in
the order they send it (one entry per sender batch). The writer also
announces, on the control channel, the topics of shared state this node
changed since its last round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from redis.asyncio import Redis

from newage.logs import log

STREAM_MAXLEN = 100_000  # batches kept in a delivery stream at most
READ_BLOCK_MS = 1000
READ_COUNT = 200

Apply = Callable[[list[Any]], Awaitable[None]]


class DeliveryStreams:
    def __init__(self, redis: Redis, key: Callable[..., str], node_id: str, apply: Apply) -> None:
        self.redis = redis
        self.key = key
        self.id = node_id
        self.apply = apply  # one item another node sent this one
        self._outgoing: dict[str, list[bytes]] = {}  # node -> encoded items
        self._changed: set[str] = set()  # topics to announce in the next writer round
        self._wake = asyncio.Event()

    def send(self, nodes: Iterable[str], item: bytes) -> None:
        """Queue one encoded item for each node; the writer sends what one
        event-loop turn queued as one stream entry per node, in order."""
        for node in nodes:
            self._outgoing.setdefault(node, []).append(item)
        self._wake.set()

    def announce(self, topic: str) -> None:
        self._changed.add(topic)
        self._wake.set()

    def forget(self, node: str) -> None:
        """``node`` is gone: what was queued for it goes nowhere."""
        self._outgoing.pop(node, None)

    async def write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            outgoing, self._outgoing = self._outgoing, {}
            publishes = [
                orjson.dumps({"t": "changed", "n": self.id, "s": s}) for s in self._changed
            ]
            self._changed.clear()
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for node, items in outgoing.items():
                        batch = b"[" + b",".join(items) + b"]"
                        pipe.xadd(
                            self.key("dlv", node),
                            {"m": batch},
                            maxlen=STREAM_MAXLEN,
                            approximate=True,
                        )
                    for message in publishes:
                        pipe.publish(self.key("ctl"), message)
                    await pipe.execute()
            except Exception:
                log.exception("cluster: sending to other nodes failed")

    async def read(self) -> None:
        stream = self.key("dlv", self.id)
        last = "0-0"
        while True:
            try:
                answer: Any = await self.redis.xread(
                    {stream: last}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster: reading the delivery stream failed")
                await asyncio.sleep(0.5)
                continue
            for _name, entries in answer or ():
                for entry_id, fields in entries:
                    last = entry_id
                    for item in orjson.loads(fields[b"m"]):
                        await self.apply(item)
