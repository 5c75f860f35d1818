"""Layering: the domain and the protocol know nothing of sockets or HTTP."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "newage"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


LIBRARIES = {  # transport, storage and CLI libraries: adapters only
    "socketio",
    "engineio",
    "starlette",
    "uvicorn",
    "granian",
    "aiosqlite",
    "asyncpg",
    "psycopg",
    "redis",
    "typer",
}


def _matches(name: str, prefixes: set[str] | tuple[str, ...]) -> bool:
    # "newage" alone (for __version__) allows the package, not all of it
    return any(name == p or (p != "newage" and name.startswith(p + ".")) for p in prefixes)


def _offending(package: str, allowed: tuple[str, ...], forbidden_libs: bool) -> list[str]:
    """Imports of modules under ``package`` that break its layer's rule."""
    found = []
    root = SRC.joinpath(*package.split(".")[1:])
    paths = [root.with_suffix(".py")] if root.with_suffix(".py").exists() else root.rglob("*.py")
    for path in paths:
        for name in imports(path):
            ours = name == "newage" or name.startswith("newage.")
            if ours and not _matches(name, allowed):
                found.append(f"{path.relative_to(SRC)} -> {name}")
            if forbidden_libs and _matches(name, LIBRARIES):
                found.append(f"{path.relative_to(SRC)} -> {name}")
    return found


# Every arrow points down: app -> realtime/http -> services -> domain -> ports,
# store -> ports. The kernel (errors, clock, settings, logs, fsutil, metrics)
# is usable from the domain down; the protocol only knows the one error type.
KERNEL = ("newage.errors", "newage.clock", "newage.settings", "newage.logs", "newage.fsutil")
RULES: dict[str, tuple[tuple[str, ...], bool]] = {
    "newage.protocol": (("newage.protocol", "newage.errors"), True),
    "newage.domain.ports": (("newage.domain.ports", "newage.protocol", *KERNEL), True),
    "newage.domain": (("newage", "newage.domain", "newage.protocol", *KERNEL), True),
    "newage.store": (("newage.store", "newage.domain.ports", "newage.protocol", *KERNEL), False),
    "newage.cluster": (
        ("newage.cluster", "newage.domain", "newage.protocol", *KERNEL),
        False,
    ),
    "newage.services": (("newage.domain", "newage.metrics", "newage.settings"), True),
    "newage.realtime": (
        (
            "newage.realtime",
            "newage.services",
            "newage.domain",
            "newage.protocol",
            "newage.metrics",
            *KERNEL,
        ),
        False,
    ),
    "newage.http": (
        (
            "newage.http",
            "newage.services",
            "newage.domain",
            "newage.protocol",
            "newage.metrics",
            *KERNEL,
        ),
        False,
    ),
}


def test_dependencies_point_one_way():
    broken = [
        line
        for package, (allowed, no_libs) in RULES.items()
        for line in _offending(package, allowed, no_libs)
    ]
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


def test_the_rule_catches_an_arrow_back_up(tmp_path, monkeypatch):
    """The checker itself: a domain module importing the store is reported."""
    fake = tmp_path / "newage"
    (fake / "domain").mkdir(parents=True)
    (fake / "domain" / "bad.py").write_text("from newage.store.sqlite import SQLiteStore\n")
    (fake / "domain" / "worse.py").write_text("import socketio\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    found = _offending("newage.domain", RULES["newage.domain"][0], True)
    assert sorted(found) == ["domain/bad.py -> newage.store.sqlite", "domain/worse.py -> socketio"]


def test_modules_stay_reasonably_small():
    for path in SRC.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        limit = 450 if "domain" in path.parts else 500
        assert lines <= limit, f"{path.relative_to(SRC)} has {lines} lines (limit {limit})"


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
