"""Per-client trust files ``settings/*.json`` (docs/protocol.md).

The files are the human-editable source of trust, as in the original; the
store keeps a mirror so that a running server sees CLI and admin changes at
once. Every trust change writes both, and start-up re-imports the files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newage.clock import iso_now
from newage.domain.keys import hash_secret, is_bcrypt_hash
from newage.domain.records import TrustEntry
from newage.fsutil import atomic_write_json
from newage.protocol.names import ClientKind
from newage.settings import SERVER_SETTINGS_FILE, SettingsError, read_json_object

PASSWORD_KEY = "sillyTavernPassWord"  # noqa: S105 - a field name
OBSOLETE_KEYS = ("sillyTavernMasterKey",)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
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


def file_name_for(client_id: str) -> str:
    if _SAFE_NAME.match(client_id):
        return f"{client_id}-settings.json"
    digest = hashlib.sha256(client_id.encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", client_id)[:60].lstrip(".") or "client"
    return f"{stem}-{digest}-settings.json"


@dataclass
class TrustFile:
    path: Path
    data: dict[str, Any]


def _entry_from(path: Path, data: dict[str, Any]) -> TrustEntry:
    where = str(path)
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


def scan(settings_dir: Path) -> list[TrustFile]:
    files = []
    for path in sorted(settings_dir.glob("*.json")):
        if path.name == SERVER_SETTINGS_FILE or path.name.startswith("."):
            continue
        files.append(TrustFile(path, read_json_object(path)))
    return files


def load_trust_files(settings_dir: Path, bcrypt_cost: int) -> list[TrustEntry]:
    """Validate every trust file; hash plaintext passwords and rewrite those files."""
    entries: dict[str, tuple[Path, TrustEntry]] = {}
    for tf in scan(settings_dir):
        entry = _entry_from(tf.path, tf.data)
        if entry.client_id in entries:
            other = entries[entry.client_id][0].name
            raise SettingsError(
                str(tf.path), "clientId", f"{entry.client_id!r} is also declared in {other}"
            )
        rewrite = any(key in tf.data for key in OBSOLETE_KEYS)
        for key in OBSOLETE_KEYS:
            tf.data.pop(key, None)
        if entry.password_hash is not None and not is_bcrypt_hash(entry.password_hash):
            entry.password_hash = hash_secret(entry.password_hash, bcrypt_cost)
            tf.data[PASSWORD_KEY] = entry.password_hash
            rewrite = True
        if rewrite:
            atomic_write_json(tf.path, tf.data, mode=0o600)
        entries[entry.client_id] = (tf.path, entry)
    return [entry for _, entry in entries.values()]


def find_file(settings_dir: Path, client_id: str) -> TrustFile | None:
    for tf in scan(settings_dir):
        if tf.data.get("clientId") == client_id:
            return tf
    return None


def write_trust_file(settings_dir: Path, entry: TrustEntry) -> Path:
    """Create or update the file of ``entry.client_id``; other keys survive."""
    existing = find_file(settings_dir, entry.client_id)
    path = existing.path if existing else settings_dir / file_name_for(entry.client_id)
    data = existing.data if existing else {}
    data.update(
        {
            "clientId": entry.client_id,
            "clientType": entry.kind.value,
            "isTrust": entry.trusted,
            "Remember_me": entry.remember_me,
        }
    )
    if entry.password_hash:
        data[PASSWORD_KEY] = entry.password_hash
    else:
        data.pop(PASSWORD_KEY, None)
    atomic_write_json(path, data, mode=0o600)
    return path


def untrust_file(settings_dir: Path, client_id: str) -> bool:
    """Mark the client's file untrusted (kept, so its other settings survive)."""
    existing = find_file(settings_dir, client_id)
    if existing is None:
        return False
    existing.data["isTrust"] = False
    atomic_write_json(existing.path, existing.data, mode=0o600)
    return True
