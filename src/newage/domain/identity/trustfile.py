"""What a trust file means: validation, kind inference and password hashing.

The files are the human-editable source of trust; the store keeps a mirror
so a running server sees CLI and admin changes at once. Every trust change
writes both, and start-up re-imports the files (docs/security.md).
"""

from __future__ import annotations

import re
from typing import Any

from newage.clock import iso_now
from newage.domain.identity.keys import hash_secret, is_bcrypt_hash
from newage.domain.ports.records import TrustEntry
from newage.domain.ports.trustfiles import TrustFile, TrustFiles
from newage.protocol.names import ClientKind
from newage.settings import SettingsError

PASSWORD_KEY = "sillyTavernPassWord"  # noqa: S105 - a field name
OBSOLETE_KEYS = ("sillyTavernMasterKey",)
_CLIENT_ID = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,128}$")


def valid_client_id(client_id: object) -> bool:
    return (
        isinstance(client_id, str)
        and bool(_CLIENT_ID.match(client_id))
        and client_id.strip() == client_id
    )


def infer_kind(client_id: str, declared: str | None) -> ClientKind:
    if declared is not None:
        return ClientKind(declared)  # validated by the caller
    # The original's convention: SillyTavern trust entries start with "SillyTavern".
    # Admins are never inferred from a name; they must be declared (docs/security.md).
    return ClientKind.SILLYTAVERN if client_id.startswith("SillyTavern") else ClientKind.CLIENT


def entry_from(where: str, data: dict[str, Any]) -> TrustEntry:
    client_id = data.get("clientId")
    if not valid_client_id(client_id):
        raise SettingsError(
            where, "clientId", "must be a non-empty string without / \\ or control characters"
        )
    assert isinstance(client_id, str)
    trusted = data.get("isTrust", False)
    if not isinstance(trusted, bool):
        raise SettingsError(where, "isTrust", f"must be true or false (got {trusted!r})")
    remember = data.get("Remember_me", False)
    if not isinstance(remember, bool):
        raise SettingsError(where, "Remember_me", f"must be true or false (got {remember!r})")
    declared = data.get("clientType")
    if declared is not None and declared not in {k.value for k in ClientKind}:
        valid = ", ".join(k.value for k in ClientKind)
        raise SettingsError(where, "clientType", f"unknown type {declared!r} (valid: {valid})")
    password = data.get(PASSWORD_KEY)
    if password is not None and not isinstance(password, str):
        raise SettingsError(where, PASSWORD_KEY, "must be a string")
    now = iso_now()
    return TrustEntry(
        client_id=client_id,
        kind=infer_kind(client_id, declared),
        trusted=trusted,
        password_hash=password or None,
        remember_me=remember,
        created_at=now,
        updated_at=now,
    )


def load_entries(files: TrustFiles, bcrypt_cost: int) -> list[TrustEntry]:
    """Validate every trust file; hash plaintext passwords and rewrite those files."""
    entries: dict[str, tuple[str, TrustEntry]] = {}
    for tf in files.scan():
        where = tf.where or "?"
        entry = entry_from(where, tf.data)
        if entry.client_id in entries:
            other = entries[entry.client_id][0].rsplit("/", 1)[-1]  # the file's name
            raise SettingsError(
                where, "clientId", f"{entry.client_id!r} is also declared in {other}"
            )
        rewrite = any(key in tf.data for key in OBSOLETE_KEYS)
        for key in OBSOLETE_KEYS:
            tf.data.pop(key, None)
        if entry.password_hash is not None and not is_bcrypt_hash(entry.password_hash):
            entry.password_hash = hash_secret(entry.password_hash, bcrypt_cost)
            tf.data[PASSWORD_KEY] = entry.password_hash
            rewrite = True
        if rewrite:
            files.save(tf)
        entries[entry.client_id] = (where, entry)
    return [entry for _, entry in entries.values()]


def find(files: TrustFiles, client_id: str) -> TrustFile | None:
    for tf in files.scan():
        if tf.data.get("clientId") == client_id:
            return tf
    return None


def write_entry(files: TrustFiles, entry: TrustEntry) -> str:
    """Create or update the file of ``entry.client_id``; other keys survive."""
    tf = find(files, entry.client_id) or TrustFile()
    tf.data.update(
        {
            "clientId": entry.client_id,
            "clientType": entry.kind.value,
            "isTrust": entry.trusted,
            "Remember_me": entry.remember_me,
        }
    )
    if entry.password_hash:
        tf.data[PASSWORD_KEY] = entry.password_hash
    else:
        tf.data.pop(PASSWORD_KEY, None)
    return files.save(tf)


def untrust(files: TrustFiles, client_id: str) -> bool:
    """Mark the client's file untrusted (kept, so its other settings survive)."""
    tf = find(files, client_id)
    if tf is None:
        return False
    tf.data["isTrust"] = False
    files.save(tf)
    return True
