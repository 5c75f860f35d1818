"""UTF-16 surrogate halves, as JavaScript string slicing produces them.

The extension cuts each token into five parts by UTF-16 code units, so an
emoji (two code units in JavaScript) can be split across two sub-chunks;
JSON carries each half as a lone ``\\ud83d``-style escape. orjson refuses
such text, and neither SQLite nor a later ``dumps`` can store it. So a
packet with lone halves is decoded leniently: the ``data`` of a stream
sub-chunk keeps a half at its edges (the stream service joins it with its
other half from the next sub-chunk); every other string is repaired at
once, lone halves becoming U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

from newage.protocol.names import Ev

SURROGATE = re.compile("[\ud800-\udfff]")
STREAM_DATA_EVENTS = frozenset(
    {
        Ev.CLIENT_STREAM_DATA_FIRST.value,
        Ev.CLIENT_STREAM_DATA_MIDDLE.value,
        Ev.CLIENT_STREAM_DATA_LAST.value,
        Ev.CLIENT_STREAM_DATA_RETRY.value,
    }
)


def is_high(char: str) -> bool:
    return "\ud800" <= char <= "\udbff"


def repair(text: str) -> str:
    """Pairs of halves become their character; a lone half becomes U+FFFD."""
    if text.isascii() or SURROGATE.search(text) is None:  # isascii: a flag, no scan
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def hold_back(text: str) -> tuple[str, str]:
    """(text to send now, a trailing high half that waits for its partner)."""
    if text and is_high(text[-1]):
        return text[:-1], text[-1]
    return text, ""


def _repaired(value: Any) -> Any:
    if isinstance(value, str):
        return repair(value)
    if isinstance(value, list):
        return [_repaired(v) for v in value]
    if isinstance(value, dict):
        return {repair(k): _repaired(v) for k, v in value.items()}
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int64(digits: str) -> int:
    # what orjson accepts, so this path never takes what the fast one refuses
    value = int(digits)
    if not -(2**63) <= value < 2**64:
        raise ValueError("integer out of range")
    return value


def lenient_loads(text: str | bytes) -> Any:
    """The standard library's decoder (which accepts lone halves), then the
    repair described above. Nesting too deep to walk is refused."""
    value = json.loads(text, parse_constant=_refuse, parse_int=_int64)
    try:
        if (
            isinstance(value, list)
            and len(value) > 1
            and value[0] in STREAM_DATA_EVENTS
            and isinstance(value[1], dict)
        ):
            payload = value[1]
            data = payload.get("data")
            fixed = _repaired(value)
            if isinstance(data, str):
                fixed[1]["data"] = data  # halves kept for the stream service
            return fixed
        return _repaired(value)
    except RecursionError:
        raise ValueError("payload nested too deeply") from None
