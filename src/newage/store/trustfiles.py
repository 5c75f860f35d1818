"""Trust files on disk: ``<data>/settings/*-settings.json``, one per client.

Only finding, reading and atomic writing happen here; what a file means is
decided in ``domain/identity/trustfile.py``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from newage.domain.ports.trustfiles import TrustFile
from newage.fsutil import atomic_write_json
from newage.settings import SERVER_SETTINGS_FILE, read_json_object

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")


def file_name_for(client_id: str) -> str:
    if _SAFE_NAME.match(client_id):
        return f"{client_id}-settings.json"
    digest = hashlib.sha256(client_id.encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", client_id)[:60].lstrip(".") or "client"
    return f"{stem}-{digest}-settings.json"


class TrustDirectory:
    """The :class:`~newage.domain.ports.trustfiles.TrustFiles` port on a directory."""

    def __init__(self, settings_dir: Path) -> None:
        self.settings_dir = settings_dir

    def scan(self) -> list[TrustFile]:
        files = []
        for path in sorted(self.settings_dir.glob("*.json")):
            if path.name == SERVER_SETTINGS_FILE or path.name.startswith("."):
                continue
            files.append(TrustFile(read_json_object(path), str(path)))
        return files

    def save(self, file: TrustFile) -> str:
        if file.where is None:
            file.where = str(self.settings_dir / file_name_for(str(file.data["clientId"])))
        atomic_write_json(Path(file.where), file.data, mode=0o600)
        return file.where
