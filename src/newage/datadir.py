"""Layout of a data directory.

```
<data>/settings/server_settings.json   server settings (README, "Configuration")
<data>/settings/*.json                 per-client trust files (README, "Configuration")
<data>/logs/{combined,error,warn,info}.log
<data>/files/                          the only area file functions can reach
<data>/newage.db                       SQLite store (keys, rooms, history, ...)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from newage.settings import SERVER_SETTINGS_FILE, SETTINGS_DIR

DB_FILE = "newage.db"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def at(cls, path: str | Path) -> DataDir:
        return cls(Path(path).expanduser().resolve())

    @property
    def settings_dir(self) -> Path:
        return self.root / SETTINGS_DIR

    @property
    def server_settings(self) -> Path:
        return self.settings_dir / SERVER_SETTINGS_FILE

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    @property
    def db_path(self) -> Path:
        return self.root / DB_FILE

    def ensure(self) -> None:
        for directory in (self.root, self.settings_dir, self.logs_dir, self.files_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # keys and password hashes live here; nobody else needs to read them
        self.root.chmod(0o700)
