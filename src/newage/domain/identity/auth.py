"""Connection authentication, the same for every namespace (docs/security.md).

Trust and keys are read from the store on every connect, so CLI changes made
while the server runs take effect immediately; the bcrypt cost is paid once
per (key, hash) thanks to :class:`VerifiedCache`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newage.clock import iso_now
from newage.domain.identity.credentials import Credentials
from newage.domain.identity.keys import VerifiedCache, expired, fingerprint, verify_secret
from newage.domain.identity.limits import WindowLimiter, rate_limited
from newage.domain.identity.ownership import IdentityRegistry
from newage.domain.identity.principal import ConnMode, Principal, is_loopback
from newage.domain.ports.records import KeyRecord, TrustEntry
from newage.domain.ports.store import Store
from newage.errors import NewAgeError, bad_request, forbidden, unauthenticated
from newage.protocol.names import EXTENSION_TYPES, GET_KEY, ClientKind, Namespace
from newage.settings import Settings

if TYPE_CHECKING:
    from newage.domain.identity.trust import KeyService

_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
_TEXT_LIMIT = 2000
_TOUCH_EVERY = 60.0
TOO_MANY = "Too many failed attempts; try again later."
KEY_NAMESPACES = frozenset({Namespace.SILLYTAVERN, Namespace.AUTH})
ELEVATED_NAMESPACES = frozenset({Namespace.DEBUG})


@dataclass(frozen=True, slots=True)
class AuthResult:
    principal: Principal
    mode: ConnMode
    # KEY_PENDING only: True when the password (or loopback rule) is already
    # satisfied, so a key may be issued without asking for anything else.
    may_issue: bool = False


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:_TEXT_LIMIT]


def declared_type_allowed(kind: ClientKind, declared: str) -> bool:
    """Privileged types are bound to the trust entry (docs/security.md)."""
    if kind is ClientKind.MONITOR:
        return declared == "monitor"
    if kind is ClientKind.SILLYTAVERN:
        return declared in EXTENSION_TYPES
    return declared not in EXTENSION_TYPES and declared != "monitor"


def default_type(kind: ClientKind) -> str:
    return {ClientKind.MONITOR: "monitor", ClientKind.SILLYTAVERN: "SillyTavern"}.get(
        kind, "client"
    )


class Authenticator:
    def __init__(
        self, store: Store, credentials: Credentials, settings: Callable[[], Settings]
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.settings = settings
        self.cache = VerifiedCache()
        # Failures count per (address, clientId): guessing one client's key
        # never locks out another client from the same address (loopback
        # hosts the admin, the extension and any local attacker alike).
        self.failures = WindowLimiter(lambda: settings().auth_failure_limit)
        # Key issuance hashes with bcrypt: bounded per address and overall so
        # getKey cannot keep the CPU busy.
        self.issues = WindowLimiter(lambda: settings().key_issue_limit)
        self.issues_all = WindowLimiter(lambda: settings().key_issue_global_limit)
        self._touched: dict[tuple[str, str], float] = {}
        self.identities = IdentityRegistry(store, credentials)

    def _fail(self, peer: str, client_id: str, message: str) -> NewAgeError:
        self.failures.hit((peer, client_id))
        return unauthenticated(message)

    def issuing(self, peer: str) -> None:
        """Count one key issuance from ``peer``; refuse past the limits."""
        if self.issues.blocked(peer) or self.issues_all.blocked(None):
            raise rate_limited("Too many keys issued; try again later.")
        self.issues.hit(peer)
        self.issues_all.hit(None)

    async def issue_key(
        self, principal: Principal, keys: KeyService, password: Any, *, satisfied: bool
    ) -> tuple[str, KeyRecord]:
        """Key issuance (``getKey``) for a SillyTavern client, on every surface
        (``/auth`` and ``/sillytavern``): the client must be trusted and meet
        the password rule (unless its connect already did: ``satisfied``),
        and issuance is rate-limited. The plaintext is returned once."""
        if not principal.is_extension:
            raise forbidden("Only SillyTavern clients are issued keys.")
        if not satisfied:
            entry = await self.store.get_trust(principal.client_id)
            if entry is None or not entry.trusted:
                raise forbidden("Client is not trusted.")
            if not await self.check_password(entry, password, principal.peer):
                raise bad_request("Password required.")
        self.issuing(principal.peer)
        settings = self.settings()
        return await keys.issue(
            principal.client_id, settings.max_keys_per_client, settings.key_expiry_days
        )

    async def _matches(self, hashed: str, key: str) -> bool:
        if self.cache.hit(hashed, key):
            return True
        if await asyncio.to_thread(verify_secret, key, hashed):
            self.cache.remember(hashed, key)
            return True
        return False

    async def check_password(self, entry: TrustEntry, password: Any, peer: str) -> bool:
        """Password rule for key issuance and bootstrap (docs/protocol.md §4).

        Returns True when satisfied, False when a password is configured but
        none was offered; raises on a wrong password or a forbidden peer.
        """
        if entry.password_hash:
            if not isinstance(password, str) or not password:
                return False
            if self.failures.blocked((peer, entry.client_id)):
                raise rate_limited(TOO_MANY)
            if not await asyncio.to_thread(verify_secret, password, entry.password_hash):
                raise self._fail(peer, entry.client_id, "Invalid password.")
            return True
        if self.settings().network_safe and not is_loopback(peer):
            raise self._fail(
                peer,
                entry.client_id,
                "Without a password, keys are only issued to loopback clients (networkSafe).",
            )
        return True

    async def authenticate(self, namespace: str, auth: Any, peer: str) -> AuthResult:
        if not isinstance(auth, dict):
            auth = {}
        client_id = auth.get("clientId")
        if not isinstance(client_id, str) or not client_id:
            raise unauthenticated("clientId is required.")
        if not _NAME.match(client_id):
            raise unauthenticated("Invalid clientId.")
        identity = auth.get("identity")
        if not isinstance(identity, str) or not identity:
            identity = client_id
        elif not _NAME.match(identity):
            raise unauthenticated("Invalid identity.")

        entry = self.credentials.trust.get(client_id)
        if entry is None or not entry.trusted:
            entry = await self.credentials.fresh_trust(client_id)
        if entry is None or not entry.trusted:
            raise self._fail(peer, client_id, "Client is not trusted.")
        declared = auth.get("clientType")
        if declared is None or declared == "":
            declared = default_type(entry.kind)
        if not isinstance(declared, str) or not declared_type_allowed(entry.kind, declared):
            raise self._fail(
                peer, client_id, f"clientType {declared!r} is not allowed for this client."
            )

        # Every socket keeps its principal for its lifetime: the few distinct
        # clientIds, types and addresses are shared, not a copy per socket.
        principal = Principal(
            client_id=sys.intern(client_id),
            identity=identity,
            kind=entry.kind,
            client_type=sys.intern(declared[:64]),
            desc=_text(auth.get("desc")),
            html=_text(auth.get("clienthtml") or auth.get("clientHTML")),
            peer=sys.intern(peer),
            loopback=is_loopback(peer),
        )
        key = auth.get("key")
        if key == GET_KEY:
            if namespace not in KEY_NAMESPACES:
                raise self._fail(peer, client_id, "Invalid key.")
            if not principal.is_extension:
                raise self._fail(peer, client_id, "Only SillyTavern clients may request a key.")
            ready = await self.check_password(entry, auth.get("password"), peer)
            await self.identities.check(identity, client_id, claim=False)
            return AuthResult(principal, ConnMode.KEY_PENDING, may_issue=ready)
        if key is None and namespace == Namespace.FUNCTION_CALL and principal.is_extension:
            if not await self.check_password(entry, auth.get("password"), peer):
                raise self._fail(peer, client_id, "Password required.")
            await self.identities.check(identity, client_id, claim=False)
            return AuthResult(principal, ConnMode.BOOTSTRAP)
        if not isinstance(key, str) or not key:
            raise self._fail(peer, client_id, "Invalid key.")
        await self.verify_key(client_id, key, peer)
        # only now, authenticated, may the connection take an unowned identity
        await self.identities.check(identity, client_id, claim=True)
        if namespace in ELEVATED_NAMESPACES:
            # logs and server internals: admins only, not the extension
            if not principal.is_admin:
                raise forbidden("Unauthorized")
            if self.settings().network_safe and not principal.loopback:
                raise forbidden("Only loopback connections may do this while networkSafe is on.")
        return AuthResult(principal, ConnMode.FULL)

    async def verify_key(self, client_id: str, key: str, peer: str) -> None:
        # A client may hold several keys; the fingerprint picks the one to
        # check, so a wrong key costs one bcrypt whatever their number.
        tag = fingerprint(key)
        record = self._usable(self.credentials.keys.get(client_id, ()), tag)
        # Past the failure limit only a key verified before is accepted: no
        # bcrypt work for guesses, and the owner's working key still opens.
        if self.failures.blocked((peer, client_id)):
            if record is None or not self.cache.hit(record.hash, key):
                raise rate_limited(TOO_MANY)
        elif record is None or not await self._matches(record.hash, key):
            # before refusing, make sure the view is not behind the CLI
            fresh = self._usable(await self.credentials.fresh_keys(client_id), tag)
            if (
                fresh is None
                or (record is not None and fresh.hash == record.hash)  # already checked
                or not await self._matches(fresh.hash, key)
            ):
                raise self._fail(peer, client_id, "Invalid key.")
            record = fresh
        now = time.monotonic()
        touched = (client_id, tag)
        if now - self._touched.get(touched, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            if len(self._touched) > 100_000:  # bounded whatever the number of keys
                self._touched.clear()
            self._touched[touched] = now
            when = iso_now()
            record.last_used_at = when
            await self.store.touch_key(client_id, tag, when)

    def _usable(self, records: Iterable[KeyRecord], tag: str) -> KeyRecord | None:
        days = self.settings().key_expiry_days
        for record in records:
            if record.fingerprint == tag:
                return None if expired(record, days) else record
        return None
