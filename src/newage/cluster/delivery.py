"""The delivery streams between nodes: the writer that sends the other nodes
what this one queued for them, and the reader of this node's own stream.

``P:dlv:<node>`` is a node's delivery stream: what other nodes send it, in
the order they send it (one entry per sender batch). The writer also
announces, on the control channel, the topics of shared state this node
changed since its last round.

Both ends talk to Redis over a connection of their own (``Link``): commands
written as RESP, replies parsed by hiredis in the protocol's callback. On the
streaming path redis-py's command layer (a task, a pool checkout, a lock and
a parser object per command) cost more CPU than the rest of a cross-node
relay together (docs/cluster.md, "Measured"); a stream entry here costs one
``write`` on the sending node and one reply callback on the receiving one,
with no task woken on either side.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import hiredis
import orjson
from redis.asyncio.connection import SSLConnection, parse_url

from newage.logs import log

STREAM_MAXLEN = 100_000  # batches kept in a delivery stream at most
READ_BLOCK_MS = 1000
READ_COUNT = 200  # stream entries per XREAD
APPLY_BACKLOG = 1000  # items waiting for a slow apply before reading stops
CONNECT_TIMEOUT = 5.0  # seconds
RECONNECT_DELAY = 0.5  # seconds after a lost connection

Apply = Callable[[list[Any]], Awaitable[None]]
ApplyNow = Callable[[list[Any]], bool]
Reply = Callable[[Any], None]


def bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def command(*args: bytes) -> bytes:
    """One command in RESP, the form Redis reads."""
    return b"*%d\r\n" % len(args) + b"".join(map(bulk, args))


class Link(asyncio.Protocol):
    """One raw connection to Redis. Replies come back in the order of the
    commands; each goes to the callback given with its command, called from
    the event loop's read callback (no task, no future)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = hiredis.Reader()
        self._waiting: deque[Reply] = deque()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        while True:
            try:
                reply = parser.gets()
            except hiredis.ProtocolError:
                log.exception("cluster: Redis sent what is not RESP")
                self.close()
                return
            if reply is False:
                return
            if not self._waiting:
                log.error("cluster: Redis sent a reply nobody asked for")
                self.close()
                return
            on_reply = self._waiting.popleft()
            try:
                on_reply(reply)
            except Exception:
                log.exception("cluster: handling a Redis reply failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiting, self._waiting = self._waiting, deque()
        lost = ConnectionError("the connection to Redis was lost")
        for on_reply in waiting:
            with contextlib.suppress(Exception):
                on_reply(lost)
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes, *on_reply: Reply) -> bool:
        """Write commands (``data``), one callback per command for its reply;
        False when the connection is closed (no callback is called)."""
        if self.transport is None or self.transport.is_closing():
            return False
        self._waiting.extend(on_reply)
        self.transport.write(data)
        return True

    async def call(self, *args: bytes) -> Any:
        """One command and its reply (set-up: not for the streaming path)."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def answered(value: Any) -> None:
            if not reply.done():
                reply.set_result(value)

        if not self.send(command(*args), answered):
            raise ConnectionError("the connection to Redis is closed")
        value = await reply
        if isinstance(value, Exception):
            raise value
        return value

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_link(url: str, name: str) -> Link:
    """A ``Link`` to the Redis of ``url`` (``redis://``, ``rediss://``,
    ``unix://``; user, password and database as redis-py reads them), named
    ``name`` in Redis's client list."""
    options = parse_url(url)
    loop = asyncio.get_running_loop()
    link: Link
    if "path" in options:
        connecting = loop.create_unix_connection(Link, options["path"])
    else:
        tls = None
        if options.get("connection_class") is SSLConnection:
            ca = options.get("ssl_ca_certs")
            tls = ssl.create_default_context(cafile=str(ca) if ca else None)
            if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
        host, port = options.get("host", "localhost"), options.get("port", 6379)
        connecting = loop.create_connection(Link, host, port, ssl=tls)
    _, link = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
    try:
        password = options.get("password")
        if password is not None:
            user = options.get("username")
            auth = (user.encode(), password.encode()) if user else (password.encode(),)
            await asyncio.wait_for(link.call(b"AUTH", *auth), CONNECT_TIMEOUT)
        if options.get("db"):
            await asyncio.wait_for(link.call(b"SELECT", b"%d" % options["db"]), CONNECT_TIMEOUT)
        # Redis refuses names with spaces
        await asyncio.wait_for(
            link.call(b"CLIENT", b"SETNAME", name.replace(" ", "_").encode()), CONNECT_TIMEOUT
        )
    except BaseException:
        link.close()
        raise
    return link


class DeliveryStreams:
    def __init__(
        self,
        url: str,
        key: Callable[..., str],
        node_id: str,
        apply: Apply,
        apply_now: ApplyNow,
        max_pending_bytes: Callable[[], int],
    ) -> None:
        self.url = url
        self.key = key
        self.id = node_id
        # one item another node sent this one: ``apply_now`` when that needs
        # no waiting (it says False otherwise), else ``apply``, in order
        self.apply = apply
        self.apply_now = apply_now
        self.max_pending_bytes = max_pending_bytes
        self._outgoing: dict[str, list[bytes]] = {}  # node -> encoded items
        self._pending_bytes = 0
        self._dropped = 0  # items refused since the last warning
        self._changed: set[str] = set()  # topics to announce in the next writer round
        self._heads: dict[str, bytes] = {}  # node -> its XADD up to the entry
        self._writer: Link | None = None
        self._in_flight = 0  # replies the writer's last round still waits for
        self._lost = 0  # commands of a round whose connection was lost
        self._flush_due = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # the reader
        self._backlog: deque[list[Any]] = deque()  # items behind one that waits
        self._applier: asyncio.Task[None] | None = None
        self._reader: Link | None = None
        self._last = b"0-0"
        self._reading = False

    # ------------------------------------------------------------------ writer
    def send(self, nodes: Iterable[str], item: bytes) -> None:
        """Queue one encoded item for each node; what one event-loop turn
        queued goes out as one stream entry per node, in order (while a round
        is in flight, the next one gathers what comes meanwhile)."""
        limit = self.max_pending_bytes()
        for node in nodes:
            if self._pending_bytes + len(item) > limit:
                # Redis is away or slower than the traffic: memory stays bounded
                self._dropped += 1
                continue
            self._pending_bytes += len(item)
            queued = self._outgoing.get(node)
            if queued is None:
                self._outgoing[node] = [item]
            else:
                queued.append(item)
        self._schedule()

    def announce(self, topic: str) -> None:
        self._changed.add(topic)
        self._schedule()

    def forget(self, node: str) -> None:
        """``node`` is gone: what was queued for it goes nowhere."""
        self._heads.pop(node, None)
        items = self._outgoing.pop(node, None)
        if items:
            self._pending_bytes -= sum(len(i) for i in items)

    def _schedule(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            if self._loop is None:
                # kept: asking for the running loop costs a system call (getpid)
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        link = self._writer
        if link is None or link.transport is None or self._in_flight:
            return  # sent once connected, or once the round in flight is answered
        if not (self._outgoing or self._changed):
            return
        if self._dropped:
            log.error(
                "cluster: %d events for other nodes dropped (more than %d bytes waited for Redis)",
                self._dropped,
                self.max_pending_bytes(),
            )
            self._dropped = 0
        outgoing, self._outgoing = self._outgoing, {}
        self._pending_bytes = 0
        parts: list[bytes] = []
        for node, items in outgoing.items():
            head = self._heads.get(node)
            if head is None:
                key, maxlen = self.key("dlv", node).encode(), b"%d" % STREAM_MAXLEN
                # the eighth argument, the batch, follows
                args = (b"XADD", key, b"MAXLEN", b"~", maxlen, b"*", b"m")
                head = self._heads[node] = b"*8\r\n" + b"".join(map(bulk, args))
            batch = b"[" + b",".join(items) + b"]"
            parts += (head, b"$%d\r\n" % len(batch), batch, b"\r\n")
        channel = self.key("ctl").encode()
        for topic in self._changed:
            message = orjson.dumps({"t": "changed", "n": self.id, "s": topic})
            parts.append(command(b"PUBLISH", channel, message))
        count = len(outgoing) + len(self._changed)
        self._changed.clear()
        link.send(b"".join(parts), *[self._written] * count)
        self._in_flight = count

    def _written(self, reply: Any) -> None:
        if isinstance(reply, ConnectionError):
            self._lost += 1  # reported once connected again
        elif isinstance(reply, Exception):
            log.error("cluster: sending to other nodes failed: %s", reply)
        self._in_flight -= 1
        if not self._in_flight and (self._outgoing or self._changed):
            self._flush()

    async def _connect(self, role: str) -> Link:
        """A new connection for ``role`` ("send", "read"), retried until made;
        a failing Redis is logged once, not twice a second."""
        failures = 0
        while True:
            try:
                link = await open_link(self.url, self.key("dlv", self.id, role))
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.error("cluster: cannot connect to Redis (%s): %s; retrying", role, exc)
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            if failures:
                log.info("cluster: connected to Redis (%s) again", role)
            return link

    async def write(self) -> None:
        """Keep the writer's connection up (until cancelled)."""
        try:
            while True:
                self._writer = await self._connect("send")
                if self._lost:
                    log.error(
                        "cluster: %d commands for other nodes were in flight when the "
                        "connection was lost: they may not have reached them",
                        self._lost,
                    )
                    self._lost = 0
                self._in_flight = 0
                self._flush()
                await self._writer.closed
                self._writer = None
                log.error("cluster: the Redis connection for sending was lost; reconnecting")
                await asyncio.sleep(RECONNECT_DELAY)
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # ------------------------------------------------------------------ reader
    async def read(self) -> None:
        """Read this node's stream (until cancelled), from where it left off
        after a lost connection."""
        try:
            while True:
                self._reader = await self._connect("read")
                self._reading = False
                self._read_more()
                await self._reader.closed
                self._reader = None
                log.error("cluster: the Redis connection for reading was lost; reconnecting")
                await asyncio.sleep(RECONNECT_DELAY)
        finally:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            if self._applier is not None:
                self._applier.cancel()

    def _read_more(self) -> None:
        if self._reading or self._reader is None or len(self._backlog) >= APPLY_BACKLOG:
            return
        stream = self.key("dlv", self.id).encode()
        block, count = b"%d" % READ_BLOCK_MS, b"%d" % READ_COUNT
        xread = command(b"XREAD", b"COUNT", count, b"BLOCK", block, b"STREAMS", stream, self._last)
        self._reading = self._reader.send(xread, self._received)

    def _received(self, reply: Any) -> None:
        self._reading = False
        if isinstance(reply, Exception):
            if not isinstance(reply, ConnectionError):
                log.error("cluster: reading the delivery stream failed: %s", reply)
                self._reader_retry()
            return
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                self._last = entry_id
                try:
                    items = orjson.loads(fields[1])
                    for item in items:
                        if self._backlog or not self._now(item):
                            self._backlog.append(item)
                except Exception:
                    # what this entry held after the fault is lost, not the stream
                    log.exception("cluster: an unreadable delivery entry %s", entry_id)
        if self._backlog and self._applier is None:
            self._applier = asyncio.create_task(self._apply_backlog(), name="cluster apply")
        self._read_more()

    def _reader_retry(self) -> None:
        # an error reply (the stream became another type, a Redis error):
        # ask again in a moment, not in a tight loop
        asyncio.get_running_loop().call_later(RECONNECT_DELAY, self._read_more)

    def _now(self, item: list[Any]) -> bool:
        try:
            return self.apply_now(item)
        except Exception:
            log.exception("cluster: delivering %s failed", item[0] if item else item)
            return True

    async def _apply_backlog(self) -> None:
        try:
            while self._backlog:
                item = self._backlog.popleft()
                if not self._now(item):
                    try:
                        await self.apply(item)
                    except Exception:
                        log.exception("cluster: delivering %s failed", item[0] if item else item)
                if len(self._backlog) < APPLY_BACKLOG // 2:
                    self._read_more()
        finally:
            self._applier = None
            self._read_more()
