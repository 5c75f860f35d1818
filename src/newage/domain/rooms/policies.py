"""Connection policies: which extensions each connected client room may use.

Pure state and algorithms (docs/protocol.md):

* ``Free`` / ``Broadcast``: every client room gets every connected extension.
* ``Manual``: the manual list intersected with the connected extensions; the
  manual list itself is kept, so an assignment comes back on reconnect.
* ``Balanced``: exactly one extension per room, loads differ by at most one;
  an assignment is kept while its extension stays connected, and only the
  moves needed to restore the balance are made.
* ``Random``: one extension drawn per room and kept while it stays connected.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from newage.protocol.names import ConnectionPolicy


class Assignments:
    def __init__(
        self, policy: ConnectionPolicy = ConnectionPolicy.FREE, seed: int | None = None
    ) -> None:
        self.policy = policy
        self.extensions: list[str] = []  # connected, in connection order
        # connected plain clients in connection order (a dict: O(1) membership
        # with thousands of clients)
        self.client_rooms: dict[str, None] = {}
        self.manual: dict[str, list[str]] = {}
        self.current: dict[str, list[str]] = {}
        self._rng = random.Random(seed)

    # ------------------------------------------------------------------ inputs
    def add_extension(self, ext: str) -> dict[str, list[str]]:
        if ext not in self.extensions:
            self.extensions.append(ext)
        return self.recompute()

    def remove_extension(self, ext: str) -> dict[str, list[str]]:
        if ext in self.extensions:
            self.extensions.remove(ext)
        return self.recompute()

    def add_client_room(self, room: str) -> dict[str, list[str]]:
        """A client arrives: only its own room is computed (the others keep
        theirs; for Balanced, the lightest extension keeps the balance)."""
        if room in self.client_rooms:
            return {}
        self.client_rooms[room] = None
        if self.policy in (ConnectionPolicy.FREE, ConnectionPolicy.BROADCAST):
            exts = list(self.extensions)
        elif self.policy is ConnectionPolicy.MANUAL:
            connected = set(self.extensions)
            exts = [e for e in self.manual.get(room, []) if e in connected]
        elif not self.extensions:
            exts = []
        elif self.policy is ConnectionPolicy.BALANCED:
            loads = self._loads()
            order = {ext: i for i, ext in enumerate(self.extensions)}
            exts = [min(self.extensions, key=lambda e: (loads[e], order[e]))]
        else:
            exts = [self._rng.choice(self.extensions)]
        self.current[room] = exts
        return {room: exts}

    def remove_client_room(self, room: str) -> dict[str, list[str]]:
        """A client leaves: nothing changes for the others, except the one
        move Balanced may need to keep loads within one of each other."""
        if room not in self.client_rooms:
            return {}
        del self.client_rooms[room]
        self.current.pop(room, None)
        if self.policy is not ConnectionPolicy.BALANCED or not self.extensions:
            return {}
        loads = self._loads()
        order = {ext: i for i, ext in enumerate(self.extensions)}
        heavy = max(self.extensions, key=lambda e: (loads[e], -order[e]))
        light = min(self.extensions, key=lambda e: (loads[e], order[e]))
        if loads[heavy] - loads[light] <= 1:
            return {}
        # the most recently placed room of the heaviest extension moves
        moved = next(r for r in reversed(self.client_rooms) if self.current.get(r) == [heavy])
        self.current[moved] = [light]
        return {moved: [light]}

    def _loads(self) -> dict[str, int]:
        loads = dict.fromkeys(self.extensions, 0)
        for exts in self.current.values():
            for ext in exts:
                if ext in loads:
                    loads[ext] += 1
        return loads

    def set_policy(self, policy: ConnectionPolicy) -> dict[str, list[str]]:
        # a policy switch starts from scratch: no stickiness across policies
        sticky = policy is self.policy
        self.policy = policy
        return self.recompute(sticky=sticky)

    def set_manual(self, room: str, extensions: Iterable[str]) -> dict[str, list[str]]:
        self.manual[room] = list(dict.fromkeys(extensions))
        return self.recompute()

    # ------------------------------------------------------------------ algorithm
    def recompute(self, *, sticky: bool = True) -> dict[str, list[str]]:
        """Recompute every connected room; return the rooms whose list changed."""
        before = self.current
        basis = before if sticky else {}
        if self.policy in (ConnectionPolicy.FREE, ConnectionPolicy.BROADCAST):
            after = {room: list(self.extensions) for room in self.client_rooms}
        elif self.policy is ConnectionPolicy.MANUAL:
            connected = set(self.extensions)
            after = {
                room: [e for e in self.manual.get(room, []) if e in connected]
                for room in self.client_rooms
            }
        elif self.policy is ConnectionPolicy.BALANCED:
            after = self._balanced(basis)
        else:
            after = self._random(basis)
        self.current = after
        return {room: exts for room, exts in after.items() if before.get(room) != exts}

    def _kept(self, before: dict[str, list[str]]) -> dict[str, str | None]:
        connected = set(self.extensions)
        kept: dict[str, str | None] = {}
        for room in self.client_rooms:
            previous = before.get(room) or []
            kept[room] = previous[0] if len(previous) == 1 and previous[0] in connected else None
        return kept

    def _balanced(self, before: dict[str, list[str]]) -> dict[str, list[str]]:
        if not self.extensions:
            return {room: [] for room in self.client_rooms}
        kept = self._kept(before)
        order = {ext: i for i, ext in enumerate(self.extensions)}
        load: dict[str, list[str]] = {ext: [] for ext in self.extensions}
        for room in self.client_rooms:
            ext = kept[room]
            if ext is not None:
                load[ext].append(room)

        def lightest() -> str:
            return min(self.extensions, key=lambda e: (len(load[e]), order[e]))

        for room in self.client_rooms:
            if kept[room] is None:
                load[lightest()].append(room)
        # restore |max - min| <= 1 with as few moves as possible,
        # moving the most recently placed room of the heaviest extension
        while True:
            heavy = max(self.extensions, key=lambda e: (len(load[e]), -order[e]))
            light = lightest()
            if len(load[heavy]) - len(load[light]) <= 1:
                break
            load[light].append(load[heavy].pop())
        owner = {room: ext for ext, rooms in load.items() for room in rooms}
        return {room: [owner[room]] for room in self.client_rooms}

    def _random(self, before: dict[str, list[str]]) -> dict[str, list[str]]:
        if not self.extensions:
            return {room: [] for room in self.client_rooms}
        kept = self._kept(before)
        return {
            room: [kept[room] or self._rng.choice(self.extensions)] for room in self.client_rooms
        }

    # ------------------------------------------------------------------ queries
    def for_room(self, room: str) -> list[str]:
        return list(self.current.get(room, []))

    def rooms_for_extension(self, ext: str) -> list[str]:
        return [room for room, exts in self.current.items() if ext in exts]

    def snapshot(self) -> dict[str, list[str]]:
        return {room: list(exts) for room, exts in self.current.items()}
