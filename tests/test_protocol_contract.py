"""docs/protocol.md and src/newage/protocol/ name the same things."""

from __future__ import annotations

import re
from pathlib import Path

from newage.protocol.names import (
    MODE_ALIASES,
    ConnectionPolicy,
    Ev,
    Namespace,
    RequestMode,
    Role,
    StreamType,
)

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()


def section(title: str) -> str:
    start = DOC.index(f"### {title}\n")
    end = DOC.find("\n### ", start + 1)
    return DOC[start : end if end != -1 else None]


def first_column(text: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", text, re.MULTILINE)


def test_event_index_matches_the_code():
    documented = first_column(section("Event index"))
    assert len(documented) == len(set(documented)), "an event is listed twice"
    assert set(documented) == {e.value for e in Ev}


def test_namespaces_match():
    assert set(first_column(section("Namespaces"))) == {n.value for n in Namespace}


def test_stream_types_match():
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \|", section("Stream types"), re.MULTILINE)
    assert {name: int(v) for name, v in rows} == {t.name: t.value for t in StreamType}


def test_modes_policies_roles_match():
    modes = section("Request modes")
    canonical = re.search(r"Canonical: (.+)\.", modes).group(1)
    assert re.findall(r"`(\w+)`", canonical) == [m.value for m in RequestMode]
    aliases = dict(re.findall(r"`(\w+)` = `(\w+)`", modes))
    assert aliases == {k: v.value for k, v in MODE_ALIASES.items()}
    assert re.findall(r"`(\w+)`", section("Connection policies")) == [
        p.value for p in ConnectionPolicy
    ]
    assert re.findall(r"`(\w+)`", section("Roles")) == [r.value for r in Role]


def test_every_listened_event_is_documented():
    """Each route registered on a namespace appears in the event index."""
    from newage.app import NAMESPACES

    documented = set(first_column(section("Event index")))
    aliases = {"getRooms", "getClientsInRoom", "getClientList"}
    for cls in NAMESPACES.values():
        for event in cls.routes:
            assert event in documented or event in aliases, (cls.__name__, event)


def test_browser_constants_module_is_current():
    from newage.http.static import WEB_ROOT
    from newage.protocol.jsexport import render

    assert (WEB_ROOT / "lib" / "constants.js").read_text() == render(), (
        "regenerate: python -m newage.protocol.jsexport > src/newage/web/lib/constants.js"
    )
