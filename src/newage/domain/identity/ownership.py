"""Who owns an identity: a connection acts only for identities of its clientId.

An identity equal to a clientId belongs to that clientId. Any other name is
owned by the first clientId that connected with it (persisted, so a restart
does not hand it to someone else); an admin can release it. Names the server
uses itself are nobody's. Without this rule a client could connect as the
extension or an admin and read, clear, receive or answer in its name.
"""

from __future__ import annotations

from typing import Any

from newage.clock import iso_now
from newage.domain.identity.credentials import Credentials
from newage.domain.ops import audit
from newage.domain.ports.store import Store
from newage.errors import forbidden, not_found
from newage.protocol.names import MONITOR_ROOM, SERVER_TARGET, SYSTEM_IDENTITY

# the server speaks and addresses with these; no client may take them
RESERVED_IDENTITIES = frozenset({MONITOR_ROOM, SERVER_TARGET, SYSTEM_IDENTITY})
_RESERVED_FOLDED = frozenset(r.casefold() for r in RESERVED_IDENTITIES)
_CACHE_LIMIT = 100_000


class IdentityRegistry:
    def __init__(self, store: Store, credentials: Credentials) -> None:
        self.store = store
        self.credentials = credentials
        self._owner: dict[str, str] = {}  # identity -> clientId, as stored

    async def check(self, identity: str, client_id: str, *, claim: bool) -> None:
        """Refuse ``identity`` unless ``client_id`` may use it; with ``claim``
        an unowned identity becomes ``client_id``'s."""
        if identity == client_id:
            return
        if identity.casefold() in _RESERVED_FOLDED:
            raise forbidden(f"Identity {identity!r} is reserved.")
        if self._is_client_id(identity):
            raise forbidden(f"Identity {identity!r} is another client's clientId.")
        owner = self._owner.get(identity)
        if owner is None:
            if claim:
                owner = await self.store.claim_identity(identity, client_id, iso_now())
            else:  # not authenticated yet (a key-less start): look, do not take
                owner = await self.store.identity_owner(identity)
            if owner is not None:
                if len(self._owner) >= _CACHE_LIMIT:
                    self._owner.clear()
                self._owner[identity] = owner
        if owner is not None and owner != client_id:
            raise forbidden(f"Identity {identity!r} belongs to another client.")

    def _is_client_id(self, name: str) -> bool:
        # The in-memory view, no store read per connect: a clientId the CLI
        # adds is in it within the watch interval, and the access guard then
        # closes sockets that took the name meanwhile.
        return name in self.credentials.trust or name in self.credentials.keys

    async def list(self) -> list[dict[str, Any]]:
        return [r.public() for r in await self.store.list_identities()]

    async def release(self, identity: str) -> None:
        self._owner.pop(identity, None)
        if not await self.store.release_identity(identity):
            raise not_found(f"Identity {identity!r} has no owner.")
        audit.record("identity.release", identity)
