"""The trust files port: the operator's per-client JSON files, read and written whole.

The domain decides what a file means (``domain/identity/trustfile.py``);
an implementation only finds, reads and atomically writes them. Methods
block (file I/O): the domain calls them in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class TrustFile:
    """One file's JSON object; ``where`` names it in error messages and is
    ``None`` for a file not written yet (the implementation names it)."""

    data: dict[str, Any] = field(default_factory=dict)
    where: str | None = None


class TrustFiles(Protocol):
    def scan(self) -> list[TrustFile]:
        """Every trust file, in a stable order; an unreadable one raises
        :class:`~newage.errors.NewAgeError` (``bad_settings``)."""

    def save(self, file: TrustFile) -> str:
        """Write ``file.data`` atomically, readable by its owner only; a new
        file is named after ``data['clientId']``. Returns where it went."""
