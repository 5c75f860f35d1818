"""``newage extension install``: our SillyTavern extension into a SillyTavern.

The extension's files ship inside the package (``newage/extension``, the
repository's ``extension/`` folder), so an installed ``newage`` can install
it. SillyTavern 1.12+ keeps a user's third-party extensions in
``<SillyTavern>/data/<user>/extensions/<name>/``.
"""

from __future__ import annotations

import re
import shutil
from importlib.resources import files
from pathlib import Path

from newage.errors import bad_request, not_found

FOLDER = "newage"
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def source() -> Path:
    folder = Path(str(files("newage") / "extension"))
    if not (folder / "manifest.json").is_file():
        raise not_found(f"The extension's files are missing from this installation ({folder}).")
    return folder


def install(sillytavern_dir: Path, user: str) -> Path:
    """Copy the extension (replacing an older copy); returns where it went."""
    if not USER_RE.match(user):
        raise bad_request(f"Invalid SillyTavern user name: {user!r}.")
    root = sillytavern_dir.expanduser().resolve()
    if not (root / "server.js").is_file() or not (root / "public").is_dir():
        raise not_found(f"{root} is not a SillyTavern folder (no server.js and public/).")
    target = root / "data" / user / "extensions" / FOLDER
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{FOLDER}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    # copy first, swap after: a failed copy leaves the installed one alone
    shutil.copytree(source(), staging, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target
