"""Who is connected: sockets, per-identity sessions and member records.

A session of an identity starts with its first authenticated socket on
``/`` or ``/llm`` and ends with the last one (docs/protocol.md). Sockets of
other namespaces never start or end sessions. Pure bookkeeping, keyed by
socket ids; the realtime layer feeds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from newage.clock import iso_now
from newage.domain.identity.principal import ConnMode, Principal
from newage.protocol.names import SESSION_NAMESPACES, Namespace


@dataclass(slots=True)
class SocketRef:
    sid: str
    namespace: str
    principal: Principal
    mode: ConnMode


@dataclass(slots=True)
class Session:
    """The member record of a present identity (docs/protocol.md)."""

    principal: Principal
    connected_at: str
    sids: dict[str, list[str]] = field(default_factory=dict)  # namespace -> sids, oldest first

    @property
    def identity(self) -> str:
        return self.principal.identity

    def item(self, *, online: bool = True) -> dict[str, Any]:
        """A client-list item with every field name the existing clients read."""
        p = self.principal
        return {
            "clientId": p.identity,
            "identity": p.identity,
            "principal": p.client_id,
            "clientType": p.client_type,
            "kind": p.kind.value,
            "desc": p.desc,
            "clientDesc": p.desc,
            "description": p.desc,
            "html": p.html,
            "clientHTML": p.html,
            "id": p.identity,
            "online": online,
            "connectedAt": self.connected_at,
            "namespaces": sorted(ns for ns, sids in self.sids.items() if sids),
            "key": None,
        }


class Presence:
    def __init__(self) -> None:
        self.sockets: dict[str, SocketRef] = {}
        self.sessions: dict[str, Session] = {}
        # identity -> namespace -> sids (all modes), oldest first
        self._by_identity: dict[str, dict[str, list[str]]] = {}
        self._by_client: dict[str, set[str]] = {}
        self.per_namespace: dict[str, int] = {ns.value: 0 for ns in Namespace}
        self.on_change: Callable[[], None] | None = None  # a cluster's directory

    # ------------------------------------------------------------------ updates
    def add(self, ref: SocketRef) -> Session | None:
        """Register a socket; return the session if this socket started one."""
        p = ref.principal
        session = self.sessions.get(p.identity)
        if session is not None and session.principal == p:
            # the identity's other sockets said the same: one record for all
            ref.principal = p = session.principal
        self.sockets[ref.sid] = ref
        if self.on_change is not None:
            self.on_change()
        self.per_namespace[ref.namespace] = self.per_namespace.get(ref.namespace, 0) + 1
        _append(self._by_identity.setdefault(p.identity, {}), ref.namespace, ref.sid)
        self._by_client.setdefault(p.client_id, set()).add(ref.sid)
        if session is not None:
            if ref.mode is ConnMode.FULL:
                _append(session.sids, ref.namespace, ref.sid)
                if ref.namespace in SESSION_NAMESPACES:
                    # the newest connection's description wins (a reload may change it)
                    session.principal = p
            return None
        if ref.mode is ConnMode.FULL and ref.namespace in SESSION_NAMESPACES:
            session = Session(principal=p, connected_at=iso_now())
            for ns, sids in self._by_identity[p.identity].items():
                full = [s for s in sids if self.sockets[s].mode is ConnMode.FULL]
                if full:
                    session.sids[ns] = full
            self.sessions[p.identity] = session
            return session
        return None

    def remove(self, sid: str) -> tuple[SocketRef | None, Session | None]:
        """Forget a socket; return it and the session it ended, if any."""
        ref = self.sockets.pop(sid, None)
        if ref is None:
            return None, None
        if self.on_change is not None:
            self.on_change()
        self.per_namespace[ref.namespace] -= 1
        p = ref.principal
        per_ns = self._by_identity.get(p.identity, {})
        _discard(per_ns, ref.namespace, sid)
        if not per_ns:
            self._by_identity.pop(p.identity, None)
        client = self._by_client.get(p.client_id)
        if client is not None:
            client.discard(sid)
            if not client:
                del self._by_client[p.client_id]
        session = self.sessions.get(p.identity)
        if session is None:
            return ref, None
        _discard(session.sids, ref.namespace, sid)
        if not any(session.sids.get(ns) for ns in SESSION_NAMESPACES):
            del self.sessions[p.identity]
            return ref, session
        return ref, None

    # ------------------------------------------------------------------ queries
    def get(self, sid: str) -> SocketRef | None:
        return self.sockets.get(sid)

    def sids(self, identity: str, namespace: str) -> list[str]:
        return list(self._by_identity.get(identity, {}).get(namespace, ()))

    def full_sids(self, identity: str, namespace: str) -> list[str]:
        return [s for s in self.sids(identity, namespace) if self.sockets[s].mode is ConnMode.FULL]

    def client_sids(self, client_id: str) -> list[SocketRef]:
        return [self.sockets[s] for s in self._by_client.get(client_id, ())]

    def identity_sids(self, identity: str) -> list[SocketRef]:
        return [
            self.sockets[s] for sids in self._by_identity.get(identity, {}).values() for s in sids
        ]

    def is_present(self, identity: str) -> bool:
        return identity in self.sessions

    def extension_online(self, identity: str) -> bool:
        """An extension can take requests only through a live ``/llm`` socket."""
        session = self.sessions.get(identity)
        return bool(session and session.principal.is_extension and session.sids.get(Namespace.LLM))

    def known_names(self) -> set[str]:
        names = set(self.sessions)
        names.update(ref.principal.client_id for ref in self.sockets.values())
        return names

    def count_by_namespace(self) -> dict[str, int]:
        return dict(self.per_namespace)

    def client_items(self) -> list[dict[str, Any]]:
        return [s.item() for s in sorted(self.sessions.values(), key=lambda s: s.connected_at)]


def _append(mapping: dict[str, list[str]], key: str, sid: str) -> None:
    # most identities have one socket per namespace: a list of exactly one
    # (setdefault(key, []).append over-allocates four slots)
    sids = mapping.get(key)
    if sids is None:
        mapping[key] = [sid]
    else:
        sids.append(sid)


def _discard(mapping: dict[str, list[str]], key: str, sid: str) -> None:
    sids = mapping.get(key)
    if sids is None:
        return
    try:
        sids.remove(sid)
    except ValueError:
        return
    if not sids:
        del mapping[key]
