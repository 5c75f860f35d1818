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
