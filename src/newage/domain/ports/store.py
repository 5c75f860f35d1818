"""The storage interface.

Everything a restart must not lose goes through here. Every mutating method
returns only after the change is durable, so an ``ok`` ack sent after it
keeps its promise (docs/security.md). Implementations must not leak their own
types: arguments and results are the records of ``domain.records`` and plain
JSON-able dicts. A networked implementation (Redis, PostgreSQL) for several
server processes can be added beside the SQLite one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from newage.domain.ports.records import (
    AuditEntry,
    AuditFilter,
    IdentityRecord,
    KeyRecord,
    MemberRecord,
    MuteRecord,
    PendingAnswer,
    PendingText,
    RoomRecord,
    StaticMapping,
    TrustEntry,
)
from newage.protocol.names import RequestMode

MessageKind = Literal["request", "system", "response"]


@dataclass(slots=True)
class StoredMessage:
    seq: int
    room: str
    kind: MessageKind
    body: dict[str, Any]


class Store(ABC):
    #: several server processes, each with its own trust files, share it: the
    #: trust table is then the cluster's truth and files only add to it
    shared: bool = False

    # --- lifecycle ---
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store answers a trivial query."""

    @abstractmethod
    async def changed_elsewhere(self) -> bool:
        """True when another process committed since the last call (CLI edits)."""

    # --- trust ---
    @abstractmethod
    async def get_trust(self, client_id: str) -> TrustEntry | None: ...

    @abstractmethod
    async def list_trust(self) -> list[TrustEntry]: ...

    @abstractmethod
    async def put_trust(self, entry: TrustEntry) -> None: ...

    @abstractmethod
    async def delete_trust(self, client_id: str) -> bool: ...

    @abstractmethod
    async def replace_all_trust(self, entries: Sequence[TrustEntry]) -> None:
        """Make the trust table exactly ``entries`` (start-up import of the files)."""

    # --- keys (several per clientId, told apart by fingerprint) ---
    @abstractmethod
    async def get_key(self, client_id: str) -> KeyRecord | None:
        """The client's newest key."""

    @abstractmethod
    async def list_keys(self, client_id: str | None = None) -> list[KeyRecord]:
        """Keys of one client (or all), by clientId then oldest first."""

    @abstractmethod
    async def put_key(
        self, record: KeyRecord, *, replace: bool = True, keep: int | None = None
    ) -> list[str]:
        """Store a key. ``replace``: it becomes the client's only key;
        otherwise it is added and only the newest ``keep`` keys stay.
        Returns the fingerprints dropped."""

    @abstractmethod
    async def delete_key(self, client_id: str, fingerprint: str | None = None) -> bool:
        """Delete one key, or (``fingerprint`` None) all of the client's."""

    @abstractmethod
    async def touch_key(self, client_id: str, fingerprint: str, when: str) -> None: ...

    # --- identities (owned by the clientId that first used them) ---
    @abstractmethod
    async def claim_identity(self, identity: str, client_id: str, when: str) -> str:
        """Record ``client_id`` as the owner unless one exists; return the owner."""

    @abstractmethod
    async def identity_owner(self, identity: str) -> str | None: ...

    @abstractmethod
    async def list_identities(self) -> list[IdentityRecord]: ...

    @abstractmethod
    async def release_identity(self, identity: str) -> bool: ...

    # --- rooms and members ---
    @abstractmethod
    async def load_rooms(self) -> list[RoomRecord]: ...

    @abstractmethod
    async def create_room(self, room: RoomRecord) -> None:
        """Insert the room with its initial members."""

    @abstractmethod
    async def ensure_room(self, room: RoomRecord) -> bool:
        """Insert the room (without members) unless one of that name exists;
        whether it was inserted. Processes starting at once may all call it."""

    @abstractmethod
    async def delete_room(self, name: str) -> None:
        """Delete the room, its memberships and its history."""

    @abstractmethod
    async def set_room_mode(self, name: str, mode: RequestMode) -> None: ...

    @abstractmethod
    async def put_members(self, room: str, members: Iterable[MemberRecord]) -> None:
        """Insert or update memberships atomically (a master transfer touches two)."""

    @abstractmethod
    async def remove_member(self, room: str, identity: str) -> None: ...

    # --- mutes (per identity and room; room None = everywhere) ---
    @abstractmethod
    async def load_mutes(self) -> list[MuteRecord]: ...

    @abstractmethod
    async def put_mute(self, mute: MuteRecord) -> None: ...

    @abstractmethod
    async def delete_mute(self, identity: str, room: str | None) -> bool:
        """Lift the mute of ``identity`` in ``room`` (``None``: the global mute);
        False when there was none (another process lifted it first)."""

    # --- policy, assignments, misc state ---
    @abstractmethod
    async def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    async def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    async def load_manual_assignments(self) -> dict[str, list[str]]: ...

    @abstractmethod
    async def set_manual_assignment(self, client_room: str, extensions: Sequence[str]) -> None: ...

    @abstractmethod
    async def list_static_mappings(self) -> list[StaticMapping]: ...

    @abstractmethod
    async def put_static_mapping(self, mapping: StaticMapping) -> None: ...

    # --- HostSubmit guest queues ---
    @abstractmethod
    async def queue_add(self, room: str, message_id: str) -> None: ...

    @abstractmethod
    async def queue_take(self, room: str) -> list[StoredMessage]:
        """Empty the room's queue; return the queued messages, oldest first."""

    @abstractmethod
    async def queue_clear(self, room: str) -> None: ...

    # --- answers owed by extensions (crash recovery) ---
    @abstractmethod
    async def pending_put(self, answers: Sequence[PendingAnswer]) -> None: ...

    @abstractmethod
    async def pending_texts(self, texts: Sequence[PendingText]) -> None:
        """The text so far of several answers, in one transaction."""

    @abstractmethod
    async def pending_done(self, request_id: str, ext: str) -> None: ...

    @abstractmethod
    async def pending_all(self) -> list[PendingAnswer]: ...

    @abstractmethod
    async def pending_claim(
        self, owner: str, *, of: str | None = None, alive: Collection[str] = ()
    ) -> list[PendingAnswer]:
        """Make ``owner`` the owner of the answers owed by ``of`` (or, when
        ``of`` is None, by every owner not in ``alive``) and return them,
        oldest first, with their new owner. Atomic: of several processes
        claiming the same answers at once, each answer goes to one of them."""

    # --- chat history ---
    @abstractmethod
    async def append_message(self, room: str, kind: MessageKind, body: dict[str, Any]) -> int:
        """Append and return the message's sequence number (its order in the room)."""

    @abstractmethod
    async def get_messages(self, room: str, ids: Sequence[str]) -> list[StoredMessage]:
        """Messages whose ``messageId`` or ``responseId`` is in ``ids``."""

    @abstractmethod
    async def update_message(self, room: str, seq: int, body: dict[str, Any]) -> None: ...

    @abstractmethod
    async def delete_messages(self, room: str, ids: Sequence[str]) -> list[str]:
        """Delete by ``messageId``/``responseId``; return the messageIds removed."""

    @abstractmethod
    async def clear_messages(self, room: str, kinds: Sequence[MessageKind]) -> int: ...

    @abstractmethod
    async def count_messages(self, room: str) -> int: ...

    @abstractmethod
    async def page_messages(self, room: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """Oldest first, strictly after ``after_seq``."""

    @abstractmethod
    async def latest_messages(self, room: str, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages, oldest first."""

    @abstractmethod
    async def messages_before(self, room: str, before_seq: int, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages before ``before_seq``, oldest first."""

    @abstractmethod
    async def messages_since(
        self, room: str, since: str, after_seq: int, limit: int
    ) -> list[StoredMessage]:
        """Messages with a timestamp after ``since`` (ISO) and a sequence
        number after ``after_seq`` (a paging cursor), oldest first."""

    # --- audit trail ---
    @abstractmethod
    async def add_audit(self, entries: Sequence[AuditEntry]) -> None: ...

    @abstractmethod
    async def list_audit(self, query: AuditFilter) -> tuple[list[AuditEntry], int]:
        """Newest first, and how many entries match in all."""

    @abstractmethod
    async def prune_audit(self, before: str, keep: int) -> int:
        """Drop entries older than ``before`` (ISO) and all but the newest ``keep``."""
