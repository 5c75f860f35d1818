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


# ---------------------------------------------------------------- payload and ack fields
def typed_rows(registry: dict[str, tuple[type, ...]]) -> dict[str, tuple[set[str], list[str]]]:
    """``{type name: (events, fields)}`` as the doc's tables spell them:
    fields in declaration order, an optional one with a trailing ``?``."""
    rows: dict[str, tuple[set[str], list[str]]] = {}
    for event, types in registry.items():
        for cls in types:
            optional = cls.__optional_keys__  # type: ignore[attr-defined]
            fields = [f"{k}?" if k in optional else k for k in cls.__annotations__]
            rows.setdefault(cls.__name__, (set(), fields))[0].add(str(event))
    return rows


def documented_rows(title: str) -> dict[str, tuple[set[str], list[str]]]:
    rows: dict[str, tuple[set[str], list[str]]] = {}
    for name, events, fields in re.findall(
        r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", section(title), re.MULTILINE
    ):
        assert name not in rows, f"{name} is documented twice"
        rows[name] = (set(re.findall(r"`([^`]+)`", events)), re.findall(r"`([^`]+)`", fields))
    return rows


def render(rows: dict[str, tuple[set[str], list[str]]]) -> str:
    """The rows the doc should have: printed when it does not."""
    return "\n".join(
        f"| `{name}` | {', '.join(f'`{e}`' for e in sorted(events))} | "
        f"{', '.join(f'`{f}`' for f in fields)} |"
        for name, (events, fields) in rows.items()
    )


def compare(title: str, expected: dict[str, tuple[set[str], list[str]]]) -> None:
    documented = documented_rows(title)
    assert documented.keys() == expected.keys(), (
        f"types in docs/protocol.md ({title}) and the code differ:\n{render(expected)}"
    )
    for name, (events, fields) in expected.items():
        doc_events, doc_fields = documented[name]
        assert doc_events == events, (name, "events", doc_events ^ events)
        # the same keys, the same ones optional (order is the doc's choice)
        assert sorted(doc_fields) == sorted(fields), (name, set(doc_fields) ^ set(fields))


def test_event_payload_fields_match_the_types():
    from newage.protocol.outbound import OUTBOUND

    compare("Event payload fields", typed_rows({e: (t,) for e, t in OUTBOUND.items()}))


def test_ack_fields_match_the_types():
    from newage.errors import ErrorAck
    from newage.protocol.acks import ACKS

    expected = typed_rows({**ACKS, "*": (ErrorAck,)})
    compare("Ack fields", expected)


def test_every_emitted_event_has_a_payload_type():
    """Each event the index lists as sent by the server has a type, and no other."""
    from newage.protocol.outbound import OUTBOUND

    rows = re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([^|]+) \|$", section("Event index"), re.M)
    sent = {name for name, direction in rows if re.search(r"S→[CX]", direction)}
    assert sent == set(OUTBOUND), sent ^ set(OUTBOUND)


def test_every_handler_returns_its_registered_ack_types():
    """A handler's return annotation names exactly the ack types of its
    event (None: the dispatcher answers ``Ok``), so the registry the doc is
    checked against is the one the code is type-checked against."""
    import typing

    from newage.app import NAMESPACES
    from newage.protocol.acks import ACKS, Ok

    seen = set()
    for cls in NAMESPACES.values():
        for event, route in cls.routes.items():
            if event not in ACKS and event not in Ev.__members__.values():
                continue  # an alias: its route is checked under the event's name
            returned = typing.get_type_hints(route.handler)["return"]
            if returned is type(None):
                returned = Ok
            types = set(typing.get_args(returned)) or {returned}
            if cls.__name__ == "ClientsNamespace" and event == Ev.GET_ROOMS:
                assert returned == list[str]  # the documented bare array
                continue
            assert types == set(ACKS[event]), (cls.__name__, event, types)
            seen.add(event)
    assert seen == set(ACKS), set(ACKS) - seen
