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

from newage.domain.ports.records import KeyRecord, TrustEntry
from newage.domain.ports.store import Store


class Credentials:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.trust: dict[str, TrustEntry] = {}
        self.keys: dict[str, list[KeyRecord]] = {}  # clientId -> its live keys

    async def refresh(self) -> None:
        self.trust = {e.client_id: e for e in await self.store.list_trust()}
        keys: dict[str, list[KeyRecord]] = {}
        for record in await self.store.list_keys():
            keys.setdefault(record.client_id, []).append(record)
        self.keys = keys

    async def fresh_trust(self, client_id: str) -> TrustEntry | None:
        entry = await self.store.get_trust(client_id)
        self.set_trust(client_id, entry)
        return entry

    async def fresh_keys(self, client_id: str) -> list[KeyRecord]:
        records = await self.store.list_keys(client_id)
        self.set_keys(client_id, records)
        return records

    def set_trust(self, client_id: str, entry: TrustEntry | None) -> None:
        if entry is None:
            self.trust.pop(client_id, None)
        else:
            self.trust[client_id] = entry

    def set_keys(self, client_id: str, records: list[KeyRecord]) -> None:
        if records:
            self.keys[client_id] = records
        else:
            self.keys.pop(client_id, None)
