"""Keeps live sockets in line with trust and keys.

A revoked key, a withdrawn trust entry or a changed client type (an admin
demoted, an extension turned into a plain client) disconnects the client's
sockets, whether the change came over the wire or from the CLI in another
process (noticed through the store's change counter): rights are fixed when
a socket connects, so a socket whose rights shrank must go. Rotating a key
does not: sockets already authenticated stay up, only new connects need the
new key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from newage.domain.identity.presence import Presence, SocketRef
from newage.domain.identity.principal import ConnMode
from newage.domain.ops import audit
from newage.domain.ports.delivery import CLIENT, IDENTITY, Outbox
from newage.domain.ports.store import Store
from newage.logs import log


class AccessGuard:
    def __init__(self, store: Store, presence: Presence, outbox: Outbox) -> None:
        self.store = store
        self.presence = presence
        self.outbox = outbox
        # a cluster: (address kind, name) -> sockets dropped on the other nodes
        self.elsewhere: Callable[[str, str], Awaitable[int]] | None = None

    async def enforce(self, client_ids: Iterable[str] | None = None) -> int:
        """Disconnect sockets that lost their trust, key or type; return how many."""
        if client_ids is None:
            client_ids = {ref.principal.client_id for ref in self.presence.sockets.values()}
        dropped = 0
        for client_id in list(client_ids):
            refs = self.presence.client_sids(client_id)
            if not refs:
                continue
            entry = await self.store.get_trust(client_id)
            has_key = bool(await self.store.list_keys(client_id))
            for ref in refs:
                if entry is None or not entry.trusted:
                    why = "trust withdrawn"
                elif entry.kind is not ref.principal.kind:
                    why = f"type changed to {entry.kind.value}"
                elif ref.mode is ConnMode.FULL and not has_key:
                    why = "key revoked"
                elif ref.principal.identity != client_id and await self.store.get_trust(
                    ref.principal.identity
                ):
                    # an identity may not be another client's clientId; this one
                    # became one after the socket connected
                    why = "its identity is now another client's clientId"
                else:
                    continue
                log.info("disconnecting %s from %s: %s", ref.principal.identity, ref.namespace, why)
                await self.outbox.disconnect(ref.sid, ref.namespace)
                dropped += 1
        return dropped

    async def disconnect_identity(self, identity: str, *, here: bool = False) -> int:
        return await self._disconnect(
            IDENTITY, identity, self.presence.identity_sids(identity), here
        )

    async def disconnect_client(self, client_id: str, *, here: bool = False) -> int:
        return await self._disconnect(CLIENT, client_id, self.presence.client_sids(client_id), here)

    async def _disconnect(self, kind: str, name: str, refs: list[SocketRef], here: bool) -> int:
        """Drop ``refs`` (and, unless ``here``, the sockets of ``name`` on
        the other nodes of a cluster); the count, audited once."""
        for ref in refs:
            await self.outbox.disconnect(ref.sid, ref.namespace)
        dropped = len(refs)
        if not here:
            if self.elsewhere is not None:
                dropped += await self.elsewhere(kind, name)
            audit.record("client.disconnect", name, sockets=dropped)
        return dropped
