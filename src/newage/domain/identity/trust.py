"""Trust entries and keys: the rules shared by the CLI and the admin events."""

from __future__ import annotations

import asyncio

from newage.clock import iso_now
from newage.domain.identity import trustfile
from newage.domain.identity.credentials import Credentials
from newage.domain.identity.keys import (
    expired,
    fingerprint,
    generate_key,
    hash_secret,
    is_bcrypt_hash,
)
from newage.domain.identity.principal import Principal, require_admin
from newage.domain.ops import audit
from newage.domain.ports.records import KeyRecord, TrustEntry
from newage.domain.ports.store import Store
from newage.domain.ports.trustfiles import TrustFiles
from newage.errors import bad_request, forbidden, not_found
from newage.protocol.acks import OK, KeyInfo
from newage.protocol.names import ClientKind


class TrustService:
    def __init__(
        self,
        store: Store,
        files: TrustFiles,
        bcrypt_cost: int,
        credentials: Credentials | None = None,
    ) -> None:
        self.store = store
        self.files = files
        self.bcrypt_cost = bcrypt_cost
        # the server passes its shared view; the CLI gets a throwaway one
        self.credentials = credentials or Credentials(store)

    async def import_files(self) -> list[TrustEntry]:
        """Start-up: make the store's trust table mirror the files exactly.

        A shared store (several processes, each with its own files) is the
        cluster's truth instead: files add the clients it does not know yet
        and change nothing it has, or one node's stale file would undo a
        change made through another (``trust remove`` keeps the entry,
        untrusted, for the same reason)."""
        entries = await asyncio.to_thread(trustfile.load_entries, self.files, self.bcrypt_cost)
        if self.store.shared:
            known = {e.client_id for e in await self.store.list_trust()}
            for entry in entries:
                if entry.client_id not in known:
                    await self.store.put_trust(entry)
        else:
            await self.store.replace_all_trust(entries)
        await self.credentials.refresh()
        return entries

    async def get(self, client_id: str) -> TrustEntry | None:
        return await self.store.get_trust(client_id)

    async def list(self) -> list[TrustEntry]:
        return await self.store.list_trust()

    async def add(
        self,
        client_id: str,
        kind: ClientKind = ClientKind.CLIENT,
        password: str | None = None,
        remember_me: bool | None = None,
    ) -> TrustEntry:
        """Trust (or re-trust) a client; ``password=None`` keeps an existing one."""
        if not trustfile.valid_client_id(client_id):
            raise bad_request("Invalid clientId.")
        if kind is ClientKind.SILLYTAVERN and not client_id.startswith("SillyTavern"):
            raise bad_request("SillyTavern clientIds must start with 'SillyTavern'.")
        existing = await self.store.get_trust(client_id)
        now = iso_now()
        entry = TrustEntry(
            client_id=client_id,
            kind=kind,
            trusted=True,
            password_hash=existing.password_hash if existing else None,
            remember_me=existing.remember_me if existing else False,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        if remember_me is not None:
            entry.remember_me = remember_me
        if password is not None:
            entry.password_hash = (
                password
                if is_bcrypt_hash(password)
                else await asyncio.to_thread(hash_secret, password, self.bcrypt_cost)
            )
            if password == "":
                entry.password_hash = None
        # file first: if the store write fails the next start-up still agrees
        await asyncio.to_thread(trustfile.write_entry, self.files, entry)
        await self.store.put_trust(entry)
        self.credentials.set_trust(client_id, entry)
        audit.record(
            "trust.add", client_id, type=kind.value, password=entry.password_hash is not None
        )
        return entry

    async def remove(self, client_id: str) -> bool:
        in_file = await asyncio.to_thread(trustfile.untrust, self.files, client_id)
        entry = await self.store.get_trust(client_id)
        if self.store.shared and entry is not None:
            entry.trusted = False
            entry.updated_at = iso_now()
            await self.store.put_trust(entry)
            in_store = True
        else:
            in_store = await self.store.delete_trust(client_id)
            entry = None
        self.credentials.set_trust(client_id, entry)
        if in_file or in_store:
            audit.record("trust.remove", client_id)
        return in_file or in_store


class KeyService:
    def __init__(
        self, store: Store, bcrypt_cost: int, credentials: Credentials | None = None
    ) -> None:
        self.store = store
        self.bcrypt_cost = bcrypt_cost
        self.credentials = credentials or Credentials(store)

    async def create(self, client_id: str) -> tuple[str, KeyRecord]:
        """Generate (or rotate) the client's key: it becomes the only one.
        The plaintext is returned once."""
        return await self._new(client_id, issued=False, keep=None)

    async def issue(self, client_id: str, keep: int, expiry_days: int) -> tuple[str, KeyRecord]:
        """A key for one more instance (``getKey``): the client's other keys
        stay valid, so a second tab or a reload does not lock out the first;
        only the newest ``keep`` survive, and stale ones are dropped."""
        for record in await self.store.list_keys(client_id):
            if expired(record, expiry_days):
                await self.store.delete_key(client_id, record.fingerprint)
        return await self._new(client_id, issued=True, keep=keep)

    async def _new(
        self, client_id: str, *, issued: bool, keep: int | None
    ) -> tuple[str, KeyRecord]:
        if not trustfile.valid_client_id(client_id):
            raise bad_request("Invalid clientId.")
        key = generate_key()
        hashed = await asyncio.to_thread(hash_secret, key, self.bcrypt_cost)
        record = KeyRecord(client_id, hashed, fingerprint(key), iso_now(), issued=issued)
        await self.store.put_key(record, replace=not issued, keep=keep)
        await self.credentials.fresh_keys(client_id)
        audit.record(
            "key.issue" if issued else "key.create", client_id, fingerprint=record.fingerprint
        )
        return key, record

    async def revoke(self, client_id: str, fingerprint: str | None = None) -> bool:
        """Revoke one key, or every key of the client."""
        existed = await self.store.delete_key(client_id, fingerprint)
        await self.credentials.fresh_keys(client_id)
        if existed:
            audit.record("key.revoke", client_id, fingerprint=fingerprint or "all")
        return existed

    async def get(self, client_id: str) -> KeyRecord:
        record = await self.store.get_key(client_id)
        if record is None:
            raise not_found("Client key not found.")
        return record

    async def list(self) -> list[KeyRecord]:
        return await self.store.list_keys()

    async def info(
        self, actor: Principal, client_id: str | None, network_safe: bool, *, legacy_denial: bool
    ) -> KeyInfo:
        """Metadata of a client's key (never the key or its hash, docs/security.md).

        Everyone may ask about their own clientId; asking about another one
        is key management (admins only, loopback under networkSafe).
        """
        target = client_id or actor.client_id
        if target != actor.client_id:
            if legacy_denial and not actor.is_admin:
                raise forbidden("You are have no right to get others key.")
            require_admin(actor, network_safe)
        records = await self.store.list_keys(target)
        if not records:
            raise not_found("Client key not found.")
        return {
            **OK,
            "key": None,
            "hasKey": True,
            **records[-1].public(),
            "keys": [r.public() for r in records],
        }
