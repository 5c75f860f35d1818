"""The other processes of a cluster, as the domain's views see them.

A whole-cluster view (the monitor's request list, the trends) asks every
other node for its part; an answer that does not come in time is left out
and its node named, so a dead or slow node costs a short wait, never a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Gathered:
    answers: dict[str, Any] = field(default_factory=dict)  # node id -> its answer
    missing: list[str] = field(default_factory=list)  # nodes that did not answer in time


class Peers(Protocol):
    async def gather(self, kind: str, payload: Any) -> Gathered:
        """Every other live node's answer to ``kind``."""
