"""The files area (``<data>/files``): the only place file functions can reach.

Paths are taken relative to the area, resolved after symlinks and ``..``,
and refused when they leave it (docs/security.md). Settings, keys, the
database and the logs live outside the area, so no path trick reaches them.
Dotfiles are refused too: temporary files of atomic writes are dotfiles,
and the HTTP layer never serves them either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from newage.errors import ErrorCode, NewAgeError, bad_request, forbidden
from newage.fsutil import atomic_write_json, is_within

MAX_JSON_BYTES = 10_000_000
OUTSIDE = "Access denied: Path is outside the files area."
HIDDEN = "Access denied: hidden files are not accessible."
RESTRICTED = "Access denied: File is restricted."


def _problem(relative: str, exc: OSError) -> NewAgeError:
    # strerror only: the exception's text would show the absolute path
    reason = exc.strerror or type(exc).__name__
    return bad_request(f"Cannot access {relative}: {reason}.")


class FileArea:
    def __init__(self, root: Path, restricted: Callable[[], Sequence[str]] = tuple) -> None:
        self.root = root
        # read at every check: the setting may change while the server runs
        self.restricted = restricted

    def resolve(self, relative: str) -> Path:
        """Confine a normalized client path to the area; raise if it escapes."""
        if relative.startswith("/") or relative.startswith("..") or "\x00" in relative:
            raise forbidden(OUTSIDE)
        if any(part.startswith(".") and part not in {".", ".."} for part in relative.split("/")):
            raise forbidden(HIDDEN)
        try:
            root = self.root.resolve()
            target = (root / relative).resolve()
        except RuntimeError:  # a symlink loop
            raise forbidden(OUTSIDE) from None
        except OSError as exc:
            raise _problem(relative, exc) from None
        if not is_within(target, root) or target == root:
            raise forbidden(OUTSIDE)
        for item in self.restricted():
            blocked = (root / item).resolve()
            if target == blocked or is_within(target, blocked):
                raise forbidden(RESTRICTED)
        return target

    def read_json(self, relative: str) -> Any:
        path = self.resolve(relative)
        try:
            if path.stat().st_size > MAX_JSON_BYTES:
                raise NewAgeError(ErrorCode.TOO_LARGE, "File too large.")
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NewAgeError(ErrorCode.NOT_FOUND, f"File not found: {relative}") from None
        except IsADirectoryError:
            raise bad_request(f"Not a file: {relative}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_request(f"Invalid JSON in {relative}: {exc}") from None
        except OSError as exc:
            raise _problem(relative, exc) from None

    def save_json(self, relative: str, data: Any) -> None:
        """Shallow-merge ``data`` over an existing JSON object (new keys win);
        missing folders are created."""
        if not isinstance(data, dict):
            raise bad_request("jsonData must be an object.")
        path = self.resolve(relative)
        try:
            current: Any = {}
            if path.is_dir():
                raise bad_request(f"Not a file: {relative}")
            if path.exists():
                if path.stat().st_size > MAX_JSON_BYTES:
                    raise NewAgeError(ErrorCode.TOO_LARGE, "File too large.")
                try:
                    current = json.loads(path.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise bad_request(f"Existing file is not valid JSON: {relative}") from None
            merged = {**current, **data} if isinstance(current, dict) else data
            atomic_write_json(path, merged)
        except OSError as exc:
            raise _problem(relative, exc) from None

    def existing(self, relative: str) -> Path:
        """A file or folder inside the area (not the area itself)."""
        path = self.resolve(relative)
        try:
            path.stat()
        except FileNotFoundError:
            raise NewAgeError(
                ErrorCode.NOT_FOUND, f"Not found in the files area: {relative}"
            ) from None
        except OSError as exc:
            raise _problem(relative, exc) from None
        return path
