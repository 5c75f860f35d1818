"""Settings changed over the wire hold for the whole cluster (docs/cluster.md).

A change an admin or the extension's form makes on one node (debug mode,
the default request mode, ``saveJsonToFile`` of the server settings) is
written to ``P:settings`` (a hash: file key -> JSON value) and announced
under the topic ``settings``; every other node reads the hash and applies
what differs, to its live settings and its own settings file. A node that
starts while others run applies the hash too. The last node to stop
deletes it: the nodes' files hold every change by then.

Each process keeps its own address, store and transport: those keys are
never shared.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from newage.cluster.node import ClusterNode
from newage.logs import log
from newage.settings import FIELD_BY_FILE_KEY, LiveSettings

NODE_LOCAL = frozenset(
    {
        "serverPort",
        "serverAddress",
        "host",
        "asgiServer",
        "uvicornWs",
        "databaseUrl",
        "databasePoolSize",
        "sqliteSynchronous",
        "redisUrl",
        "redisPrefix",
    }
)


class SharedSettings:
    def __init__(self, node: ClusterNode, live: LiveSettings) -> None:
        self.node = node
        self.live = live
        self.key = node.key("settings")
        self._announce = node.changed("settings")
        self._adopting = asyncio.Lock()
        live.on_applied = self.applied
        node.on_changed["settings"] = self.adopt
        node.on_stop.append(self._last_one_out)

    async def applied(self, changes: dict[str, Any]) -> None:
        """A change made on this node: the cluster's from now on."""
        shared = {k: orjson.dumps(v) for k, v in changes.items() if k not in NODE_LOCAL}
        if not shared:
            return
        try:
            await self.node.redis.hset(self.key, mapping=shared)  # type: ignore[arg-type]
        except Exception:
            log.exception("cluster: sharing the settings change %s failed", sorted(shared))
            return
        self._announce()
        # another node's change of the same key, adopted here between this
        # node's own change and its HSET, would leave this node behind the hash
        await self.adopt()

    async def adopt(self) -> None:
        """Apply what the cluster's settings say and this node's do not."""
        # one at a time: a read of the hash applied after a later read's
        # result would put back a value the hash no longer holds
        async with self._adopting:
            await self._adopt()

    async def _adopt(self) -> None:
        raw: dict[Any, Any] = await self.node.redis.hgetall(self.key)
        current = self.live.current.to_file_dict()
        changes: dict[str, Any] = {}
        for name, value in raw.items():
            key, wanted = name.decode(), orjson.loads(value)
            if key in FIELD_BY_FILE_KEY and key not in NODE_LOCAL and current.get(key) != wanted:
                changes[key] = wanted
        if not changes:
            return
        try:
            await self.live.apply(changes, elsewhere=True)
        except Exception:
            log.exception("cluster: the shared settings %s do not apply here", sorted(changes))
            return
        log.info("cluster: settings changed on another node: %s", ", ".join(sorted(changes)))

    async def _last_one_out(self) -> None:
        if not await self.node.others_alive():
            await self.node.redis.delete(self.key)
