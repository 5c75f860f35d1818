"""Who is on the other end of a socket, as established at connect time."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from newage.errors import forbidden
from newage.protocol.names import ClientKind


class ConnMode(StrEnum):
    FULL = "full"  # authenticated with a key
    KEY_PENDING = "key_pending"  # connected with key 'getKey'; may only obtain a key
    BOOTSTRAP = "bootstrap"  # key-less extension settings read (docs/protocol.md §4)


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    identity: str
    kind: ClientKind
    client_type: str  # as declared in the handshake (display only)
    desc: str | None
    html: str | None
    peer: str
    loopback: bool

    @property
    def is_admin(self) -> bool:
        return self.kind is ClientKind.MONITOR

    @property
    def is_extension(self) -> bool:
        return self.kind is ClientKind.SILLYTAVERN

    @property
    def is_plain(self) -> bool:
        return self.kind is ClientKind.CLIENT


# Every connect asks twice (admission, then authentication), nearly always
# about one of a few addresses; parsing it each time was about 2 % of a full
# connect's CPU. Bounded, so a spread of peers costs at most this many entries.
@functools.lru_cache(maxsize=4096)
def is_loopback(peer: str) -> bool:
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def require_sensitive(principal: Principal, network_safe: bool, *, allow_extension: bool) -> None:
    """The gate of sensitive operations (docs/security.md): admins (and,
    where the matrix says so, extensions), and only over loopback while
    ``networkSafe`` is on."""
    if not (principal.is_admin or (allow_extension and principal.is_extension)):
        raise forbidden("Unauthorized")
    if network_safe and not principal.loopback:
        raise forbidden("Only loopback connections may do this while networkSafe is on.")


def require_admin(principal: Principal, network_safe: bool) -> None:
    require_sensitive(principal, network_safe, allow_extension=False)
