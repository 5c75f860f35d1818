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

from newage.domain.functions.static import StaticMappings, is_hidden

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/json", ".map")

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


class SafeStaticFiles(StaticFiles):
    def get_path(self, scope: Scope) -> str:
        path = super().get_path(scope)
        if is_hidden(path):
            raise HTTPException(status_code=404)
        return path

    def file_response(
        self, full_path: str | os.PathLike[str], *args: object, **kw: object
    ) -> Response:
        response = super().file_response(full_path, *args, **kw)  # type: ignore[arg-type]
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mapped_response(mappings: StaticMappings, path: str) -> Response | None:
    target = mappings.lookup(path)
    if target is None:
        return None
    return FileResponse(target, headers={"X-Content-Type-Options": "nosniff"})
