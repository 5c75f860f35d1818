"""Layering: the domain and the protocol know nothing of sockets or HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "newage"
TRANSPORT = {
    "socketio",
    "engineio",
    "starlette",
    "uvicorn",
    "aiosqlite",
    "typer",
    "newage.realtime",
    "newage.http",
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_and_protocol_do_not_import_the_transport():
    for package in ("domain", "protocol"):
        for path in (SRC / package).rglob("*.py"):
            bad = {
                name
                for name in imports(path)
                if any(name == t or name.startswith(t + ".") for t in TRANSPORT)
            }
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_modules_stay_reasonably_small():
    for path in SRC.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 500, f"{path.relative_to(SRC)} has {lines} lines"


def test_the_sdk_needs_nothing_of_the_server():
    """A program using newage.sdk imports only the wire's names from the rest of newage."""
    for path in (SRC / "sdk").rglob("*.py"):
        ours = {n for n in imports(path) if n == "newage" or n.startswith("newage.")}
        bad = {n for n in ours if not n.startswith(("newage.sdk", "newage.protocol.names"))}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"
    # and at run time: nothing of the server is loaded with it
    import subprocess
    import sys

    code = (
        "import newage.sdk, sys; print(' '.join(m for m in sys.modules if m.startswith('newage')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {m for m in loaded if not m.startswith("newage.sdk")} == {
        "newage",
        "newage.protocol",
        "newage.protocol.names",
    }
