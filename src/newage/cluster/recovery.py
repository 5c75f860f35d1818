"""Closing the answers a dead node owed (docs/cluster.md, "A node that dies").

Every pending answer in the shared store carries the id of the node that
owes it. When a node's heartbeat expires, the one node whose ``ZREM`` removed
it claims its answers in the store and closes them as a restart would; a
node that starts claims those of every owner not alive. A claim re-owns the
rows atomically, so whichever path comes first closes each answer, once, and
a claimer that dies half-way leaves the rest to the next claim on it.
"""

from __future__ import annotations

from newage.cluster.node import ClusterNode
from newage.domain.llm.recovery import NODE_STOPPED, OpenAnswers
from newage.logs import log


class NodeRecovery:
    def __init__(self, node: ClusterNode, answers: OpenAnswers) -> None:
        self.node = node
        self.answers = answers
        answers.owner = node.id
        node.on_node_dead.append(self.node_dead)

    async def startup(self) -> None:
        """Before this node joins: the answers of owners no longer alive."""
        alive = [*await self.node.others_alive(), self.node.id]
        await self.answers.recover(alive)

    async def node_dead(self, dead: str) -> None:
        left = await self.answers.store.pending_claim(self.node.id, of=dead)
        if left:
            await self.answers.close(left, NODE_STOPPED)
            log.warning("closed %d answer(s) left open by cluster node %s", len(left), dead)
