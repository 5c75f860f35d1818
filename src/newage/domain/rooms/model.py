"""The chat-room record, its roles and the permission rules (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newage.domain.identity.principal import Principal
from newage.domain.ports.records import RoomRecord
from newage.errors import forbidden
from newage.protocol.names import MONITOR_ROOM, Role


@dataclass(slots=True)
class Room(RoomRecord):
    """A room as the domain uses it: the stored record plus its rules.

    ``members`` keeps join order (dicts are ordered).
    """

    @classmethod
    def from_record(cls, record: RoomRecord) -> Room:
        return cls(
            record.name,
            record.mode,
            record.created_at,
            record.created_by,
            record.personal_of,
            dict(record.members),
        )

    def role(self, identity: str) -> Role | None:
        member = self.members.get(identity)
        return member.role if member else None

    @property
    def master(self) -> str | None:
        for member in self.members.values():
            if member.role is Role.MASTER:
                return member.identity
        return None

    def with_role(self, role: Role) -> list[str]:
        return [m.identity for m in self.members.values() if m.role is role]

    @property
    def moderators(self) -> list[str]:
        """Master first, then managers: who gets moderation notices."""
        master = self.master
        return ([master] if master else []) + self.with_role(Role.MANAGER)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "roomName": self.name,
            "mode": self.mode.value,
            "messageRequestMode": self.mode.value,
            "master": self.master,
            "managers": self.with_role(Role.MANAGER),
            "guests": self.with_role(Role.GUEST),
            "members": list(self.members),
            "createdAt": self.created_at,
            "createdBy": self.created_by,
            "personal": self.personal_of is not None,
        }


# ---------------------------------------------------------------- permissions (Appendix D)
def is_moderator(room: Room, principal: Principal) -> bool:
    return principal.is_admin or room.role(principal.identity) in (Role.MASTER, Role.MANAGER)


def require_moderator(room: Room, principal: Principal) -> None:
    if not is_moderator(room, principal):
        raise forbidden("Unauthorized")


def require_master(room: Room, principal: Principal) -> None:
    if not (principal.is_admin or room.role(principal.identity) is Role.MASTER):
        raise forbidden("Unauthorized")


def require_can_act_on(room: Room, principal: Principal, target: str) -> None:
    """Managers may not act on the master or on other managers."""
    require_moderator(room, principal)
    if principal.is_admin or room.role(principal.identity) is Role.MASTER:
        return
    if room.role(target) in (Role.MASTER, Role.MANAGER) and target != principal.identity:
        raise forbidden("Managers cannot act on the master or other managers.")


def is_reserved(name: str) -> bool:
    return name == MONITOR_ROOM
