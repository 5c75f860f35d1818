"""In-memory trust entries and key hashes for the connect path.

Every connect reads trust and key; two store round trips cost more CPU
than the rest of a namespace connect. This view is loaded at start-up,
updated by our own writes, and reloaded when the store reports a change by
another process (the CLI), polled every 100 ms. A lookup that would refuse
re-reads the store first, so a key or trust granted by the CLI works at
once; a revocation by the CLI takes effect within the poll interval, and
the guard then closes sockets that connected meanwhile.
"""

from __future__ import annotations

from newage.domain.records import KeyRecord, TrustEntry
from newage.store.base import Store


class Credentials:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.trust: dict[str, TrustEntry] = {}
        self.keys: dict[str, KeyRecord] = {}

    async def refresh(self) -> None:
        self.trust = {e.client_id: e for e in await self.store.list_trust()}
        self.keys = {k.client_id: k for k in await self.store.list_keys()}

    async def fresh_trust(self, client_id: str) -> TrustEntry | None:
        entry = await self.store.get_trust(client_id)
        self.set_trust(client_id, entry)
        return entry

    async def fresh_key(self, client_id: str) -> KeyRecord | None:
        record = await self.store.get_key(client_id)
        self.set_key(client_id, record)
        return record

    def set_trust(self, client_id: str, entry: TrustEntry | None) -> None:
        if entry is None:
            self.trust.pop(client_id, None)
        else:
            self.trust[client_id] = entry

    def set_key(self, client_id: str, record: KeyRecord | None) -> None:
        if record is None:
            self.keys.pop(client_id, None)
        else:
            self.keys[client_id] = record
