"""What the other nodes' extensions are doing, for routing across nodes.

After each heartbeat every node writes ``P:load:<node>`` (its extensions
that take requests, each with its requests in flight and waiting; expires
with the heartbeat) and reads the other live nodes' in the same pipeline.
An extension counts when its node published it and the directory still has
it (``ext:<identity>``, current within milliseconds of a disconnect); a new
one counts from the next reading, within about a heartbeat. Loads are at
most about two heartbeats old, and a request this node sends one of them
counts at once (until the next reading).

The connection policy's model takes the other nodes' extensions too, after
each reading, so its assignments of this node's client rooms (``Balanced``,
``Random``, ``Manual``) range over every node's extensions.
"""

from __future__ import annotations

from typing import Any

import orjson

from newage.cluster.node import NODE_TTL, ClusterNode
from newage.domain.llm.routing import Router
from newage.protocol.names import Namespace

EXTENSION = f"{Namespace.LLM.value} ext:"


class RemoteLoads:
    def __init__(self, node: ClusterNode, router: Router) -> None:
        self.node = node
        self.router = router
        self.loads: dict[str, dict[str, int]] = {}  # other node -> extension -> load
        self._added: set[str] = set()  # other nodes' extensions put in the policy's model
        router.remote = self.extensions
        node.on_beat.append(self.exchange)
        node.more_status["remoteExtensions"] = self._where

    async def exchange(self) -> None:
        mine = {ext: self.router.load(ext) for ext in self.router.online()}
        key = self.node.key("load", self.node.id)
        self.node.owned[key] = None  # deleted when this node stops
        self.node.owned.move_to_end(key)
        others = sorted(self.node.entries)
        async with self.node.redis.pipeline(transaction=False) as pipe:
            pipe.set(key, orjson.dumps(mine), ex=int(NODE_TTL))
            for other in others:
                pipe.get(self.node.key("load", other))
            found: list[Any] = await pipe.execute()
        self.loads = {n: orjson.loads(raw) for n, raw in zip(others, found[1:], strict=True) if raw}
        await self._assignable()

    async def _assignable(self) -> None:
        """The connection policy assigns this node's client rooms among the
        extensions of every node: the other nodes' join its model."""
        relations = self.router.relations
        remote = set(self._where())
        for ext in sorted(remote - set(relations.model.extensions)):
            self._added.add(ext)
            await relations.extension_online(ext)
        for ext in sorted(self._added - remote):
            self._added.discard(ext)
            if not self.router.here(ext):  # else it is this node's now
                await relations.extension_offline(ext)

    def _where(self) -> dict[str, dict[str, int]]:
        """Extension -> {node: load} for the other nodes' extensions that
        take requests: published by their node (which leaves out one missing
        its heartbeat) and still in its directory (which drops one that
        left within milliseconds)."""
        where: dict[str, dict[str, int]] = {}
        for node, published in self.loads.items():
            for ext, load in published.items():
                if node in self.node.where.get(EXTENSION + ext, ()):
                    where.setdefault(ext, {})[node] = load
        return where

    def extensions(self) -> dict[str, int]:
        return {ext: min(nodes.values()) for ext, nodes in self._where().items()}

    def node_of(self, ext: str) -> str | None:
        """The node to send ``ext``'s next request to (the least loaded of
        those where it is connected)."""
        nodes = self._where().get(ext)
        if not nodes:
            return None
        return min(nodes, key=lambda n: (nodes[n], n))

    def sent(self, node: str, ext: str) -> None:
        """One more request for ``ext`` on ``node``, until the next reading."""
        loads = self.loads.get(node)
        if loads is not None and ext in loads:
            loads[ext] += 1
