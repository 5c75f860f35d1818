"""A test client: one Engine.IO connection carrying any number of namespaces,
each with its own handshake auth, as a browser tab with socket.io-client does.

python-socketio's AsyncClient connects all namespaces at once with one auth;
``open`` sends further CONNECT packets itself so tests can mix outcomes on
one connection (e.g. a refused ``/debug`` beside a live ``/llm``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import socketio
from socketio import packet

Predicate = Callable[[Any], bool]


class Refused(Exception):
    def __init__(self, namespace: str, data: Any) -> None:
        self.namespace = namespace
        self.data = data
        message = data.get("message") if isinstance(data, dict) else data
        super().__init__(f"{namespace} refused: {message}")

    @property
    def message(self) -> str:
        return str(self.data.get("message") if isinstance(self.data, dict) else self.data)

    @property
    def detail(self) -> Any:
        """The ``data`` object of the CONNECT_ERROR packet."""
        return self.data.get("data") if isinstance(self.data, dict) else None


class Peer:
    def __init__(
        self,
        url: str,
        *,
        transports: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.transports = transports or ["websocket"]
        self.headers = headers or {}
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[tuple[str, str], list[Any]] = defaultdict(list)
        self._waiters: list[tuple[str, str, Predicate | None, asyncio.Future[Any]]] = []
        self._outcome: dict[str, asyncio.Future[Any]] = {}
        self._registered: set[str] = set()

    def _register(self, namespace: str) -> None:
        if namespace in self._registered:
            return
        self._registered.add(namespace)

        async def any_event(event: str, *args: Any) -> None:
            self._record(namespace, event, args[0] if len(args) == 1 else list(args))

        def connected() -> None:
            fut = self._outcome.get(namespace)
            if fut and not fut.done():
                fut.set_result(None)

        def refused(*data: Any) -> None:
            fut = self._outcome.get(namespace)
            if fut and not fut.done():
                fut.set_result(Refused(namespace, data[0] if data else None))

        def disconnected(*args: Any) -> None:
            # the reason python-socketio gives; ``next(ns, "disconnect")`` waits for it
            self._record(namespace, "disconnect", args[0] if args else None)

        self.sio.on("*", any_event, namespace=namespace)
        self.sio.on("connect", connected, namespace=namespace)
        self.sio.on("connect_error", refused, namespace=namespace)
        self.sio.on("disconnect", disconnected, namespace=namespace)

    def _record(self, namespace: str, event: str, payload: Any) -> None:
        """Keep ``payload`` for :meth:`next`, and hand it to a waiter that wants it."""
        self.events[(namespace, event)].append(payload)
        for waiter in list(self._waiters):
            ns, name, pred, fut = waiter
            matches = ns == namespace and name == event and not fut.done()
            if matches and (pred is None or pred(payload)):
                fut.set_result(payload)
                self._waiters.remove(waiter)

    async def open(self, namespace: str, auth: dict[str, Any] | None, timeout: float = 5) -> None:
        """Connect a namespace; raise :class:`Refused` when the server refuses."""
        self._register(namespace)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._outcome[namespace] = fut
        if self.sio.eio.state != "connected":
            try:
                await self.sio.connect(
                    self.url,
                    namespaces=[namespace],
                    auth=auth,
                    transports=self.transports,
                    headers=self.headers,
                    wait_timeout=timeout,
                )
            except socketio.exceptions.ConnectionError:
                result = fut.result() if fut.done() else Refused(namespace, None)
                raise result from None
            return
        before = dict(self.sio.namespaces)
        await self.sio._send_packet(
            self.sio.packet_class(packet.CONNECT, data=auth, namespace=namespace)
        )
        result = await asyncio.wait_for(fut, timeout)
        if isinstance(result, Refused):
            # python-socketio forgets every namespace when "/" is refused; the
            # server did not close them (that is what the tests check)
            for ns, sid in before.items():
                if ns != namespace:
                    self.sio.namespaces.setdefault(ns, sid)
            self.sio.connected = True
            raise result

    def connected(self, namespace: str) -> bool:
        return namespace in self.sio.namespaces

    async def call(self, namespace: str, event: str, *args: Any, timeout: float = 5) -> Any:
        data: Any = args if len(args) > 1 else (args[0] if args else None)
        if not args:
            return await self.sio.call(event, namespace=namespace, timeout=timeout)
        return await self.sio.call(event, data, namespace=namespace, timeout=timeout)

    async def emit(self, namespace: str, event: str, *args: Any) -> None:
        if not args:
            await self.sio.emit(event, namespace=namespace)
        else:
            await self.sio.emit(event, args[0] if len(args) == 1 else args, namespace=namespace)

    async def next(
        self, namespace: str, event: str, predicate: Predicate | None = None, timeout: float = 5
    ) -> Any:
        """The next matching event, including ones already received and unclaimed.

        ``event`` may be ``"disconnect"``: the server closing ``namespace``
        (the payload is python-socketio's reason).
        """
        for payload in self.events.get((namespace, event), []):
            if predicate is None or predicate(payload):
                self.events[(namespace, event)].remove(payload)
                return payload
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiter = (namespace, event, predicate, fut)
        self._waiters.append(waiter)
        try:
            payload = await asyncio.wait_for(fut, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        # claimed: do not hand it out twice
        bucket = self.events[(namespace, event)]
        if payload in bucket:
            bucket.remove(payload)
        return payload

    def received(self, namespace: str, event: str) -> list[Any]:
        return list(self.events.get((namespace, event), []))

    async def close(self) -> None:
        if self.sio.eio.state != "connected":
            return
        for namespace in list(self.sio.namespaces):
            await self.sio._send_packet(
                self.sio.packet_class(packet.DISCONNECT, namespace=namespace)
            )
        for _ in range(200):  # let what was emitted go out before aborting
            if self.sio.eio.queue.empty():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        # over long-polling a graceful close waits for the pending poll (up to
        # the ping interval); the server has the DISCONNECTs, so do not wait
        await self.sio.eio.disconnect(abort=True)
        task = self.sio.eio.read_loop_task
        if task is not None and not task.done():
            task.cancel()


def auth(client_id: str, key: str | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"clientId": client_id, **extra}
    if key is not None:
        data["key"] = key
    return data
