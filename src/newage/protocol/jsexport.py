"""``web/lib/constants.js``: the wire names as an ES module for browser clients.

Generated from :mod:`newage.protocol.names`; a test keeps the file in sync
(``python -m newage.protocol.jsexport > src/newage/web/lib/constants.js``).
"""

from __future__ import annotations

import json

from newage.protocol.names import (
    MODE_ALIASES,
    ConnectionPolicy,
    Ev,
    MemberStatus,
    Namespace,
    RequestMode,
    Role,
    StreamType,
)


def _obj(pairs: dict[str, object]) -> str:
    body = ",\n".join(f"  {k}: {json.dumps(v)}" for k, v in pairs.items())
    return "Object.freeze({\n" + body + ",\n})"


def render() -> str:
    parts = [
        "// Generated from src/newage/protocol/names.py: do not edit by hand.",
        f"export const MSG_TYPE = {_obj({e.value: e.value for e in Ev})};",
        f"export const STREAM_TYPE = {_obj({t.name: t.value for t in StreamType})};",
        f"export const NAMESPACES = {_obj({n.name: n.value for n in Namespace})};",
        f"export const MODES = {_obj({m.name: m.value for m in RequestMode})};",
        f"export const MODE_ALIASES = {_obj({k: v.value for k, v in MODE_ALIASES.items()})};",
        f"export const POLICIES = {_obj({p.name: p.value for p in ConnectionPolicy})};",
        f"export const ROLES = {_obj({r.name: r.value for r in Role})};",
        f"export const MEMBER_STATUS = {_obj({s.name: s.value for s in MemberStatus})};",
    ]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
