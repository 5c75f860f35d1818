"""This process as one node of the cluster: heartbeat, directory, delivery.

Keys (``P`` is the ``redisPrefix``):

- ``P:nodes`` sorted set, node id -> the time its heartbeat expires;
- ``P:dir:<node>`` set of the addresses a node has sockets for, each
  ``"<namespace> <address>"`` (``*`` for "any socket of the namespace");
- ``P:dlv:<node>`` the node's delivery stream (``delivery.py``);
- ``P:ctl`` pub/sub channel for the rare events: directory changes, room
  changes, a node leaving.

Every node keeps every other node's directory in memory (refreshed by the
change messages, re-read every few seconds), so sending costs no Redis
round trip: an event for sockets of this node only never touches Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from newage.cluster.delivery import DeliveryStreams
from newage.logs import log

HEARTBEAT = 1.0  # seconds between heartbeats
NODE_TTL = 5.0  # a node whose heartbeat is this old is dead
RESYNC_EVERY = 5  # heartbeats between full directory reloads (self-healing)
DIRECTORY_DELAY = 0.005  # seconds: a burst of connects costs one publish
ALL = "*"
EMPTY: frozenset[str] = frozenset()

Deliver = Callable[[list[Any]], Awaitable[None]]
DeliverNow = Callable[[list[Any]], bool]
Handler = Callable[[Any], Awaitable[Any]]
ASK, ANSWER = "q", "r"  # a call to another node and its answer


class ClusterNode:
    def __init__(
        self,
        url: str,
        prefix: str,
        addresses: Callable[[], set[str]],
        sessions: Callable[[], list[dict[str, Any]]],
        max_pending_bytes: Callable[[], int] = lambda: 16_000_000,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.url = url
        self.prefix = prefix
        self.addresses = addresses  # this node's directory entries, computed
        self.sessions = sessions  # this node's client-list items
        self.clients: dict[str, list[dict[str, Any]]] = {}  # other node -> its items
        self.on_clients_changed: list[Callable[[], None]] = []
        self._clients_sent = b"[]"
        self.redis: Redis = Redis.from_url(url, health_check_interval=10)
        self.deliver: Deliver | None = None  # applies an item sent by another node
        self.deliver_now: DeliverNow | None = None  # the same when it needs no waiting
        # topic ("rooms", "mutes", "policy") -> reloads of what another node changed
        self.on_changed: dict[str, Callable[[], Awaitable[None]]] = {}
        # other keys this node wrote that mean nothing once it stops (bounded:
        # the oldest are left to their expiry)
        self.owned: OrderedDict[str, None] = OrderedDict()
        self.on_node_gone: list[Callable[[str], Awaitable[None]]] = []
        self.on_stop: list[Callable[[], Awaitable[None]]] = []  # before its keys go
        # run on the one node that removed a dead node's heartbeat (its cleaner)
        self.on_node_dead: list[Callable[[str], Coroutine[Any, Any, None]]] = []
        self._cleaning: set[asyncio.Task[None]] = set()
        self.on_beat: list[Callable[[], Awaitable[None]]] = []  # after each heartbeat
        self.more_status: dict[str, Callable[[], Any]] = {}  # added to status()
        self.where: dict[str, set[str]] = {}  # entry -> other nodes having it
        self.entries: dict[str, set[str]] = {}  # other live node -> its entries
        self.published: set[str] = set()
        self.delivery = DeliveryStreams(
            url, self.key, self.id, self._apply, self._apply_now, max_pending_bytes
        )
        self._dir_wake = asyncio.Event()
        self._dirty: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._beats = 0
        self.handlers: dict[str, Handler] = {}  # what other nodes may ask of this one
        self._calls: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._answering: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ keys
    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def channel(self) -> str:
        return self.key("ctl")

    # ------------------------------------------------------------------ lifecycle
    async def others_alive(self) -> list[str]:
        """Nodes whose heartbeat has not expired, this one excepted."""
        raw: Any = await self.redis.zrangebyscore(self.key("nodes"), time.time(), "+inf")
        return [n.decode() for n in raw if n.decode() != self.id]

    async def start(self) -> None:
        await self.redis.delete(self.key("dlv", self.id), self.key("dir", self.id))
        await self._heartbeat()
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.channel)  # before the snapshot: no change missed
        await self._reload_all()
        for work, name in (
            (self._listen(pubsub), "cluster control"),
            (self.delivery.read(), "cluster delivery"),
            (self.delivery.write(), "cluster writer"),
            (self._publish_directory(), "cluster directory"),
            (self._beat(), "cluster heartbeat"),
        ):
            self._tasks.append(asyncio.create_task(work, name=name))
        log.info(
            "cluster node %s joined (prefix %s, %d other nodes)",
            self.id,
            self.prefix,
            len(self.entries),
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._dirty is not None:
            self._dirty.cancel()
        for hook in self.on_stop:
            with contextlib.suppress(Exception):
                await hook()
        with contextlib.suppress(Exception):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.key("nodes"), self.id)
                pipe.delete(
                    self.key("dir", self.id), self.key("dlv", self.id), self.key("clients", self.id)
                )
                owned = list(self.owned)
                for start in range(0, len(owned), 1000):
                    pipe.delete(*owned[start : start + 1000])
                pipe.publish(self.channel, orjson.dumps({"t": "bye", "n": self.id}))
                await pipe.execute()
        await self.redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), 2))
        except Exception:
            return False

    # ------------------------------------------------------------------ sending
    def nodes_for(self, namespace: str, to: Sequence[str] | None) -> set[str] | frozenset[str]:
        """Other nodes with a socket of ``namespace`` in any address of ``to``."""
        where = self.where
        if not where:
            return EMPTY
        if to is None:
            return where.get(f"{namespace} {ALL}", EMPTY)
        found: set[str] | frozenset[str] = EMPTY
        for addr in to:
            nodes = where.get(f"{namespace} {addr}")
            if nodes:
                found = found | nodes
        return found

    def send(self, nodes: Iterable[str], item: bytes) -> None:
        """Queue one encoded item for each node; the writer sends what one
        event-loop turn queued as one stream entry per node, in order."""
        self.delivery.send(nodes, item)

    def changed(self, topic: str) -> Callable[[], None]:
        """A hook for a service whose ``topic`` state this node changed in the
        shared store: the others reload that state, once per writer round
        however many changes it holds."""

        def announce() -> None:
            self.delivery.announce(topic)

        return announce

    def mark_dirty(self) -> None:
        """Local sockets or their rooms changed: publish the directory soon."""
        if self._dirty is None:
            loop = asyncio.get_running_loop()
            self._dirty = loop.call_later(DIRECTORY_DELAY, self._directory_due)

    def _directory_due(self) -> None:
        self._dirty = None
        self._dir_wake.set()

    async def _publish_directory(self) -> None:
        while True:
            await self._dir_wake.wait()
            self._dir_wake.clear()
            now = self.addresses()
            added, dropped = now - self.published, self.published - now
            clients = orjson.dumps([{**i, "node": self.id} for i in self.sessions()])
            if not added and not dropped and clients == self._clients_sent:
                continue
            key = self.key("dir", self.id)
            message = {"t": "dir", "n": self.id, "a": sorted(added), "d": sorted(dropped)}
            if clients != self._clients_sent:
                message["c"] = orjson.Fragment(clients)
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    if added:
                        pipe.sadd(key, *added)
                    if dropped:
                        pipe.srem(key, *dropped)
                    pipe.set(self.key("clients", self.id), clients)
                    pipe.publish(self.channel, orjson.dumps(message))
                    await pipe.execute()
                self.published, self._clients_sent = now, clients
            except Exception:
                log.exception("cluster: publishing the directory failed")

    # ------------------------------------------------------------------ receiving
    async def ask(self, node: str, kind: str, payload: Any, timeout: float) -> Any:
        """Run handler ``kind`` on ``node`` and return its answer; raise
        TimeoutError, or ConnectionError when that node dies meanwhile."""
        corr = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[corr] = (node, future)
        try:
            self.send([node], orjson.dumps([ASK, corr, self.id, kind, payload]))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._calls.pop(corr, None)

    def tell(self, node: str, kind: str, payload: Any) -> None:
        """Run handler ``kind`` on ``node``; no answer."""
        self.send([node], orjson.dumps([ASK, "", self.id, kind, payload]))

    async def _answer(self, corr: str, node: str, kind: str, payload: Any) -> None:
        handler = self.handlers.get(kind)
        try:
            result = await handler(payload) if handler is not None else None
        except Exception:
            log.exception("cluster: answering %s from %s failed", kind, node)
            result = None
        if corr:
            self.send([node], orjson.dumps([ANSWER, corr, result]))

    def _apply_now(self, item: list[Any]) -> bool:
        """Apply ``item`` if that needs no waiting; False (nothing done) if it does."""
        if item[0] == ASK:
            # a task: what the delivery stream carries after it is not held up
            task = asyncio.create_task(self._answer(*item[1:]))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
            return True
        if item[0] == ANSWER:
            call = self._calls.get(item[1])
            if call is not None and not call[1].done():
                call[1].set_result(item[2])
            return True
        return self.deliver_now is not None and self.deliver_now(item)

    async def _apply(self, item: list[Any]) -> None:
        if self.deliver is None:
            return
        try:
            await self.deliver(item)
        except Exception:
            log.exception("cluster: delivering %s failed", item[0] if item else item)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster: the control channel failed")
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            body = orjson.loads(message["data"])
            node = body.get("n")
            if node == self.id:
                continue
            kind = body.get("t")
            if kind == "dir":
                self._apply_directory(node, body.get("a", ()), body.get("d", ()))
                if "c" in body:
                    self._set_clients(node, body["c"])
            elif kind == "changed":
                reload = self.on_changed.get(body.get("s"))
                if reload is not None:
                    await reload()
            elif kind == "bye":
                await self._gone(node)

    def _set_clients(self, node: str, items: list[dict[str, Any]]) -> None:
        if self.clients.get(node) != items:
            self.clients[node] = items
            for hook in self.on_clients_changed:
                hook()

    def other_clients(self) -> list[dict[str, Any]]:
        return [item for node in sorted(self.clients) for item in self.clients[node]]

    def assume(self, node: str, entry: str) -> None:
        """Take ``entry`` as ``node``'s before it says so (its next publish
        or reload confirms or corrects it)."""
        if node in self.entries:
            self._apply_directory(node, (entry,), ())

    def _apply_directory(self, node: str, added: Iterable[str], dropped: Iterable[str]) -> None:
        entries = self.entries.setdefault(node, set())
        for entry in added:
            entries.add(entry)
            self.where.setdefault(entry, set()).add(node)
        for entry in dropped:
            entries.discard(entry)
            nodes = self.where.get(entry)
            if nodes is not None:
                nodes.discard(node)
                if not nodes:
                    del self.where[entry]

    # ------------------------------------------------------------------ liveness
    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._heartbeat()
                for hook in self.on_beat:
                    await hook()
                self._beats += 1
                if self._beats % RESYNC_EVERY == 0:
                    await self._reload_all()
                    self.mark_dirty()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster heartbeat failed")

    async def _heartbeat(self) -> None:
        now = time.time()
        nodes = self.key("nodes")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(nodes, {self.id: now + NODE_TTL})
            pipe.zrangebyscore(nodes, "-inf", now)
            _, expired = await pipe.execute()
        for raw in expired:
            node = raw.decode()
            # the one node whose ZREM wins cleans up after the dead one
            won = bool(await self.redis.zrem(nodes, node))
            if won:
                log.warning("cluster node %s stopped answering: dropped", node)
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.delete(
                        self.key("dir", node), self.key("dlv", node), self.key("clients", node)
                    )
                    # the others would see it gone only at their next full reload
                    pipe.publish(self.channel, orjson.dumps({"t": "bye", "n": node}))
                    await pipe.execute()
            await self._gone(node)
            for hook in self.on_node_dead if won else ():
                # a task: closing its answers must not hold up the heartbeat
                task = asyncio.create_task(hook(node), name="cluster node cleanup")
                self._cleaning.add(task)
                task.add_done_callback(self._cleaning.discard)

    async def _reload_all(self) -> None:
        raw: Any = await self.redis.zrangebyscore(self.key("nodes"), time.time(), "+inf")
        alive = [n.decode() for n in raw]
        others = [n for n in alive if n != self.id]
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in others:
                pipe.smembers(self.key("dir", node))
                pipe.get(self.key("clients", node))
            found = await pipe.execute()
        for node in [n for n in self.entries if n not in others]:
            await self._gone(node)
        for i, node in enumerate(others):
            members, clients = found[2 * i], found[2 * i + 1]
            fresh = {m.decode() for m in members}
            old = self.entries.get(node, set())
            self._apply_directory(node, fresh - old, old - fresh)
            self._set_clients(node, orjson.loads(clients) if clients else [])

    async def _gone(self, node: str) -> None:
        entries = self.entries.pop(node, None)
        if self.clients.pop(node, None):
            for changed in self.on_clients_changed:
                changed()
        if entries is None:
            return
        for entry in entries:
            nodes = self.where.get(entry)
            if nodes is not None:
                nodes.discard(node)
                if not nodes:
                    del self.where[entry]
        self.delivery.forget(node)
        for target, future in list(self._calls.values()):
            if target == node and not future.done():
                future.set_exception(ConnectionError(f"node {node} is gone"))
        for hook in self.on_node_gone:
            try:
                await hook(node)
            except Exception:
                log.exception("cluster: node-gone hook failed")

    def status(self) -> dict[str, Any]:
        return {
            "node": self.id,
            "addresses": len(self.published),
            "directoryPending": self._dirty is not None or self._dir_wake.is_set(),
            "nodes": sorted([self.id, *self.entries]),
            "remoteAddresses": {n: len(e) for n, e in sorted(self.entries.items())},
            **{name: report() for name, report in self.more_status.items()},
        }
