"""Client keys and passwords: generation, bcrypt hashing, verification cache.

Keys are 43 URL-safe characters (256 bits), well under bcrypt's 72-byte
limit, shown once and stored only as bcrypt hashes (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict

import bcrypt

from newage.clock import epoch_from_iso
from newage.domain.ports.records import KeyRecord

KEY_BYTES = 32
_BCRYPT_RE = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")


def generate_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def _bytes(secret: str) -> bytes:
    # bcrypt only looks at 72 bytes; bcrypt>=5 raises instead of truncating.
    return secret.encode("utf-8")[:72]


def hash_secret(secret: str, cost: int) -> str:
    return bcrypt.hashpw(_bytes(secret), bcrypt.gensalt(rounds=cost)).decode("ascii")


def verify_secret(secret: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_bytes(secret), hashed.encode("ascii"))
    except ValueError:
        return False


def is_bcrypt_hash(value: str) -> bool:
    return bool(_BCRYPT_RE.match(value))


def fingerprint(key: str) -> str:
    """Short, non-reversible tag to tell keys apart in lists."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def expired(record: KeyRecord, expiry_days: int, now: float | None = None) -> bool:
    """An issued key unused for ``expiry_days`` (0: never) no longer works.
    Keys made by an admin or the CLI are meant for programs that may run
    rarely, so they do not expire."""
    if not record.issued or expiry_days <= 0:
        return False
    last = record.last_used_at or record.created_at
    try:
        since = epoch_from_iso(last)
    except ValueError:
        return False
    return (time.time() if now is None else now) - since > expiry_days * 86400


class VerifiedCache:
    """Remembers successful (hash, secret) verifications.

    Keyed by the stored hash, so a rotated or revoked key can never hit: the
    caller always looks up the current hash first. Only a SHA-256 of the
    secret is kept in memory.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    @staticmethod
    def _digest(secret: str) -> bytes:
        return hashlib.sha256(secret.encode("utf-8")).digest()

    def hit(self, hashed: str, secret: str) -> bool:
        digest = self._entries.get(hashed)
        if digest is None:
            return False
        self._entries.move_to_end(hashed)
        return hmac.compare_digest(digest, self._digest(secret))

    def remember(self, hashed: str, secret: str) -> None:
        self._entries[hashed] = self._digest(secret)
        self._entries.move_to_end(hashed)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
