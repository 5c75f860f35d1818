"""Several real ``newage serve`` processes as one cluster: one shared data
directory, one Redis, a key prefix of their own (deleted at the end)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from newage.protocol.names import ClientKind
from tests.helpers.actors import DECLARED
from tests.helpers.client import Peer, auth
from tests.helpers.fake_extension import FakeExtension
from tests.helpers.proc import ServerProcess, arun_cli
from tests.helpers.wait import eventually

# the ``cluster`` fixture (conftest.py): ``await cluster(n, **env)`` starts n nodes
MakeCluster = Callable[..., Awaitable["Cluster"]]

REDIS_URL = "redis://127.0.0.1:6379/0"


class Cluster:
    def __init__(self, root: Path, size: int, env: dict[str, str] | None = None) -> None:
        self.data = root / "shared"
        self.prefix = f"newage-test-{uuid.uuid4().hex[:12]}"
        env = {"NEWAGE_REDIS_URL": REDIS_URL, "NEWAGE_REDIS_PREFIX": self.prefix, **(env or {})}
        self.env = env  # the CLI uses the nodes' store
        self.nodes = [ServerProcess(self.data, env=env) for _ in range(size)]
        self.keys: dict[str, str] = {}
        self.peers: list[Peer] = []
        self.admins: list[Peer] = []  # one per node, on /debug: the cluster's view
        self.redis = Redis.from_url(REDIS_URL)

    async def start(self) -> Cluster:
        for node in self.nodes:  # one after the other: the first creates the data dir
            await asyncio.to_thread(node.start)
        for index in range(len(self.nodes)):
            self.admins.append(
                await self.connect(index, "watch", ClientKind.MONITOR, ("/", "/debug"))
            )
        await self.settled()
        return self

    async def key(self, client_id: str, kind: ClientKind) -> str:
        if client_id not in self.keys:
            data = ("--data-dir", str(self.data))
            added = await arun_cli(
                "trust", "add", client_id, "--type", kind.value, *data, env=self.env
            )
            assert added.returncode == 0, added.stderr
            made = await arun_cli("keys", "create", client_id, *data, env=self.env)
            assert made.returncode == 0, made.stderr
            self.keys[client_id] = made.stdout.strip()
        return self.keys[client_id]

    async def connect(
        self,
        index: int,
        client_id: str,
        kind: ClientKind = ClientKind.CLIENT,
        namespaces: tuple[str, ...] = ("/", "/llm", "/rooms"),
    ) -> Peer:
        key = await self.key(client_id, kind)
        peer = Peer(self.nodes[index].url)
        self.peers.append(peer)
        for namespace in namespaces:
            await peer.open(namespace, auth(client_id, key, clientType=DECLARED[kind]))
        return peer

    async def extension(self, index: int, name: str = "SillyTavern-1") -> FakeExtension:
        peer = await self.connect(index, name, ClientKind.SILLYTAVERN, ("/llm",))
        return FakeExtension(peer, name)

    async def requested(self, request_id: str, message: str = "go") -> tuple[FakeExtension, Peer]:
        """An extension on node 0 that has received ``request_id``, sent by a
        web client on node 1 once the nodes know each other."""
        ext = await self.extension(0)
        web = await self.connect(1, "web")
        await self.settled()
        ack = await web.call("/llm", "LLM_REQUEST", {"requestId": request_id, "message": message})
        assert ack["status"] == "ok", ack
        await ext.next_request()
        return ext, web

    async def status(self, index: int) -> dict[str, Any]:
        ack = await self.admins[index].call("/debug", "SERVER_STATUS")
        assert ack["status"] == "ok", ack
        return ack["serverStatus"]  # type: ignore[no-any-return]

    async def settled(self, live: list[int] | None = None) -> None:
        """Every live node knows every other's current directory."""
        indexes = live if live is not None else list(range(len(self.nodes)))

        async def agreed() -> bool:
            views = [(await self.status(i))["cluster"] for i in indexes]
            own = {v["node"]: v["addresses"] for v in views}
            for view in views:
                if view["directoryPending"] or len(view["nodes"]) != len(indexes):
                    return False
                theirs = {n: c for n, c in view["remoteAddresses"].items()}
                if theirs != {n: c for n, c in own.items() if n != view["node"]}:
                    return False
            return True

        await eventually(agreed, timeout=10, interval=0.05)

    async def leftover_keys(self) -> list[bytes]:
        return [k async for k in self.redis.scan_iter(match=f"{self.prefix}:*")]

    async def stop(self) -> list[str]:
        """Stop every node; the output of each."""
        for peer in self.peers:
            await peer.close()
        outputs = [await asyncio.to_thread(node.stop) for node in self.nodes]
        keys = await self.leftover_keys()
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()
        return outputs
