"""Preparing a data directory before a server or a CLI command uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from newage.datadir import DataDir
from newage.domain.identity import trustfile
from newage.domain.ports.records import TrustEntry
from newage.protocol.names import ClientKind
from newage.settings import Settings, load_settings
from newage.store.trustfiles import TrustDirectory

DEFAULT_EXTENSION = "SillyTavern-8000"


def prepare_data_dir(
    data_dir: str | Path, config: Path | None = None, overrides: dict[str, Any] | None = None
) -> tuple[DataDir, Settings]:
    """Create missing pieces, load settings and validate the trust files.

    A fresh directory (no server_settings.json yet, and no explicit config)
    trusts ``SillyTavern-8000`` without a password, as the original ships.
    Raises :class:`~newage.settings.SettingsError` on any invalid file.
    """
    data = DataDir.at(data_dir)
    fresh = config is None and not data.server_settings.exists()
    data.ensure()
    settings = load_settings(data.root, config, overrides)
    files = TrustDirectory(data.settings_dir)
    if fresh and trustfile.find(files, DEFAULT_EXTENSION) is None:
        entry = TrustEntry(
            DEFAULT_EXTENSION, ClientKind.SILLYTAVERN, trusted=True, remember_me=True
        )
        trustfile.write_entry(files, entry)
    trustfile.load_entries(files, settings.bcrypt_cost)
    return data, settings
