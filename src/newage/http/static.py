"""Static files: packaged web assets and ``addStaticResources`` mappings.

Paths are resolved after symlinks and ``..`` and must stay inside their
root; dotfiles are never served. Starlette's StaticFiles already checks
confinement; we add the dotfile rule and a JavaScript MIME type (pages load
these files as ES modules).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from newage.fsutil import is_within

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/json", ".map")

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
BUILTIN_MOUNTS = ("/lib", "/dist", "/exampleClient", "/public")


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.replace("\\", "/").split("/") if part)


class SafeStaticFiles(StaticFiles):
    def get_path(self, scope: Scope) -> str:
        path = super().get_path(scope)
        if _hidden(path):
            raise HTTPException(status_code=404)
        return path

    def file_response(
        self, full_path: str | os.PathLike[str], *args: object, **kw: object
    ) -> Response:
        response = super().file_response(full_path, *args, **kw)  # type: ignore[arg-type]
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def resolve_confined(root: Path, relative: str) -> Path | None:
    """``root/relative`` after symlinks and ``..``, or None if it escapes ``root``."""
    if "\x00" in relative or _hidden(relative):
        return None
    root = root.resolve()
    candidate = (root / relative.lstrip("/")).resolve()
    return candidate if is_within(candidate, root) else None


class DynamicMappings:
    """URL prefix -> file or directory inside the files area (reference 8.3)."""

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

    def response(self, path: str) -> Response | None:
        target = self.lookup(path)
        if target is None:
            return None
        return FileResponse(target, headers={"X-Content-Type-Options": "nosniff"})
