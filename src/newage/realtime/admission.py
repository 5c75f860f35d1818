"""Who may open an Engine.IO session: connection limits in total and per
address, a handshake rate per address, and a deadline for connecting a
namespace.

A session that has not connected any namespace is *unauthenticated*: it
holds a descriptor and some memory and proves nothing. When a limit is
reached, the oldest unauthenticated session (of that address, or anywhere
for the total) makes room for the new handshake, so a flood of idle sockets
can never keep an authenticating client out; only sessions that did
authenticate fill a limit for good. Unauthenticated sessions are closed once
``namespaceConnectTimeout`` has passed: they carry their deadline, and one
timer for all of them (``expired``/``next_deadline``) stands in for a timer
per connection that would outlive most handshakes by seconds.

The handshake rate does not apply to loopback: a local program can spend our
CPU without us anyway, and loopback is where the extension and the admin
connect from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from newage.domain.identity.limits import WindowLimiter
from newage.domain.identity.principal import is_loopback
from newage.settings import Settings


@dataclass
class Decision:
    refusal: str | None = None
    evict: list[str] = field(default_factory=list)


class Admission:
    def __init__(self, live: Callable[[], Settings]) -> None:
        self.live = live
        self.address_of: dict[str, str] = {}  # eio sid -> address
        self.by_address: dict[str, set[str]] = {}
        # unauthenticated sessions -> (address, deadline), oldest first
        # (dicts keep insertion order)
        self.pending: dict[str, tuple[str, float]] = {}
        self.handshakes = WindowLimiter(lambda: self.live().handshake_rate_limit, window=60.0)

    def admit(self, eio_sid: str, address: str, now: float) -> Decision:
        """``now``: the clock of the deadlines (the event loop's)."""
        settings = self.live()
        if not is_loopback(address) and not self.handshakes.take(address):
            return Decision("Too many connection attempts from this address; try again later.")
        decision = Decision()
        mine = self.by_address.get(address, set())
        if len(mine) >= settings.max_connections_per_address:
            victim = next((sid for sid, (a, _) in self.pending.items() if a == address), None)
            if victim is None:
                return Decision("Too many connections from this address.")
            decision.evict.append(victim)
        if len(self.address_of) - len(decision.evict) >= settings.max_connections:
            victim = next((sid for sid in self.pending if sid not in decision.evict), None)
            if victim is None:
                return Decision("The server is at its connection limit; try again later.")
            decision.evict.append(victim)
        for victim in decision.evict:
            self.gone(victim)
        self.address_of[eio_sid] = address
        self.by_address.setdefault(address, set()).add(eio_sid)
        self.pending[eio_sid] = (address, now + settings.namespace_connect_timeout / 1000)
        return decision

    def authenticated(self, eio_sid: str) -> None:
        self.pending.pop(eio_sid, None)

    def unauthenticated(self, eio_sid: str) -> bool:
        return eio_sid in self.pending

    def expired(self, now: float) -> list[str]:
        """The unauthenticated sessions past their deadline, no longer
        pending (the caller closes them)."""
        late: list[str] = []
        for sid, (_, deadline) in self.pending.items():
            if deadline > now:
                break  # oldest first: the rest are later (a changed timeout aside)
            late.append(sid)
        for sid in late:
            del self.pending[sid]
        return late

    def next_deadline(self) -> float | None:
        for _, deadline in self.pending.values():
            return deadline
        return None

    def gone(self, eio_sid: str) -> None:
        self.pending.pop(eio_sid, None)
        address = self.address_of.pop(eio_sid, None)
        if address is not None:
            mine = self.by_address.get(address)
            if mine is not None:
                mine.discard(eio_sid)
                if not mine:
                    del self.by_address[address]
