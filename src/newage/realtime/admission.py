"""Who may open an Engine.IO session: connection limits in total and per
address, a handshake rate per address, and a deadline for connecting a
namespace.

A session that has not connected any namespace is *unauthenticated*: it
holds a descriptor and some memory and proves nothing. When a limit is
reached, the oldest unauthenticated session (of that address, or anywhere
for the total) makes room for the new handshake, so a flood of idle sockets
can never keep an authenticating client out; only sessions that did
authenticate fill a limit for good. Unauthenticated sessions are closed once
``namespaceConnectTimeout`` has passed.

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
        # unauthenticated sessions, oldest first (dicts keep insertion order)
        self.pending: dict[str, str] = {}
        self.handshakes = WindowLimiter(lambda: self.live().handshake_rate_limit, window=60.0)

    def admit(self, eio_sid: str, address: str) -> Decision:
        settings = self.live()
        if not is_loopback(address) and not self.handshakes.take(address):
            return Decision("Too many connection attempts from this address; try again later.")
        decision = Decision()
        mine = self.by_address.get(address, set())
        if len(mine) >= settings.max_connections_per_address:
            victim = next((sid for sid, addr in self.pending.items() if addr == address), None)
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
        self.pending[eio_sid] = address
        return decision

    def authenticated(self, eio_sid: str) -> None:
        self.pending.pop(eio_sid, None)

    def unauthenticated(self, eio_sid: str) -> bool:
        return eio_sid in self.pending

    def gone(self, eio_sid: str) -> None:
        self.pending.pop(eio_sid, None)
        address = self.address_of.pop(eio_sid, None)
        if address is not None:
            mine = self.by_address.get(address)
            if mine is not None:
                mine.discard(eio_sid)
                if not mine:
                    del self.by_address[address]
