"""Plain records shared by the domain and the store (no storage types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from newage.protocol.acks import KeyMeta
from newage.protocol.names import ClientKind, RequestMode, Role


@dataclass(slots=True)
class TrustEntry:
    client_id: str
    kind: ClientKind = ClientKind.CLIENT
    trusted: bool = True
    password_hash: str | None = None
    remember_me: bool = False
    created_at: str = ""
    updated_at: str = ""

    def public(self) -> dict[str, Any]:
        """Wire view: never the password or its hash."""
        return {
            "clientId": self.client_id,
            "clientType": self.kind.value,
            "isTrust": self.trusted,
            "hasPassword": self.password_hash is not None,
            "Remember_me": self.remember_me,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(slots=True)
class KeyRecord:
    client_id: str
    hash: str
    fingerprint: str
    created_at: str
    last_used_at: str | None = None
    # True for keys handed out by ``getKey`` (they expire when unused);
    # keys made by an admin or the CLI do not
    issued: bool = False

    def public(self) -> KeyMeta:
        """Key metadata; the secret is shown once at creation and the hash never."""
        return {
            "clientId": self.client_id,
            "fingerprint": self.fingerprint,
            "createdAt": self.created_at,
            "lastUsedAt": self.last_used_at,
            "issued": self.issued,
        }


@dataclass(slots=True)
class IdentityRecord:
    """An identity and the clientId that owns it (the first one to use it)."""

    identity: str
    client_id: str
    claimed_at: str

    def public(self) -> dict[str, Any]:
        return {"identity": self.identity, "clientId": self.client_id, "claimedAt": self.claimed_at}


@dataclass(slots=True)
class MemberRecord:
    identity: str
    role: Role
    joined_at: str


@dataclass(slots=True)
class RoomRecord:
    name: str
    mode: RequestMode
    created_at: str
    created_by: str | None = None
    personal_of: str | None = None
    members: dict[str, MemberRecord] = field(default_factory=dict)


@dataclass(slots=True)
class MuteRecord:
    identity: str
    muted_until: str
    muted_by: str
    room: str | None = None
    duration: int | None = None  # seconds; None = permanent

    @property
    def duration_label(self) -> int | str:
        """The wire's ``duration``: seconds, or ``'permanent'``."""
        return self.duration if self.duration is not None else "permanent"


@dataclass(slots=True)
class StaticMapping:
    url_path: str
    target: str  # relative to the files area
    created_at: str


@dataclass(slots=True)
class PendingAnswer:
    """An answer an extension owes: kept durable while the request is open,
    so a crash leaves a trace the next start can close (and the text so far)."""

    request_id: str
    ext: str
    room: str
    requester: str | None
    mode: str
    kind: str
    output_id: str | None = None
    text: str = ""
    owner: str = ""  # the cluster node that owes it ("" for a single process)


class PendingText(NamedTuple):
    """The text so far of one pending answer (its latest output)."""

    request_id: str
    ext: str
    output_id: str
    text: str


AuditLevel = Literal["info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: str
    level: AuditLevel
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]
    id: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "level": self.level,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What to read of the audit trail: every set field narrows it down."""

    level: str | None = None  # this level and worse
    action: str | None = None  # an action or its family ("trust")
    actor: str | None = None
    search: str | None = None
    before_id: int | None = None  # paging: entries older than this one
    limit: int = 50
