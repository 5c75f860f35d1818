"""URL prefix -> file or directory inside the files area (docs/protocol.md).

The table behind ``addStaticResources``; the HTTP layer serves what
:meth:`StaticMappings.lookup` returns. Targets are resolved after symlinks
and ``..`` and never leave the files area; dotfiles are never served.
"""

from __future__ import annotations

from pathlib import Path

from newage.fsutil import is_within

# The server's own static folders (web/lib, web/dist, ...), mounted by the
# HTTP layer; a mapping may not shadow them.
BUILTIN_MOUNTS = ("/lib", "/dist", "/exampleClient", "/public")


def is_hidden(path: str) -> bool:
    """A dotfile or dot-directory anywhere in the path ("." itself is not)."""
    parts = path.replace("\\", "/").split("/")
    return any(part.startswith(".") and part != "." for part in parts if part)


def resolve_confined(root: Path, relative: str) -> Path | None:
    """``root/relative`` after symlinks and ``..``, or None if it escapes ``root``."""
    if "\x00" in relative or is_hidden(relative):
        return None
    root = root.resolve()
    candidate = (root / relative.lstrip("/")).resolve()
    return candidate if is_within(candidate, root) else None


class StaticMappings:
    """URL prefix -> file or directory inside the files area (docs/protocol.md)."""

    def __init__(self, files_root: Path) -> None:
        self.files_root = files_root
        self.mappings: dict[str, str] = {}

    def set(self, url_path: str, target: str) -> None:
        self.mappings[url_path.rstrip("/") or "/"] = target

    def lookup(self, path: str) -> Path | None:
        # longest matching prefix wins, so /a/b can override a mapping of /a
        for url in sorted(self.mappings, key=len, reverse=True):
            if path == url or path.startswith(url + "/"):
                base = resolve_confined(self.files_root, self.mappings[url])
                if base is None:
                    return None
                rest = path[len(url) :].lstrip("/")
                if not rest:
                    target = base
                elif base.is_dir():
                    target_or_none = resolve_confined(base, rest)
                    if target_or_none is None:
                        return None
                    target = target_or_none
                else:
                    return None
                if target.is_dir():
                    target = target / "index.html"
                return target if target.is_file() else None
        return None
