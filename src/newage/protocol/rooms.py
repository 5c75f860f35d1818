"""Payload models of ``/rooms`` (with the original protocol's field aliases)."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, model_validator

from newage.protocol.models import Name, Payload

ROOM = AliasChoices("roomName", "room", "name")
MEMBER = AliasChoices("identity", "clientId", "targetIdentity", "targetClientId")
TARGET = AliasChoices("targetIdentity", "targetClientId", "identity", "clientId")


class RoomIn(Payload):
    """``{roomName}``, or the room name as a bare string."""

    room_name: Name = Field(validation_alias=ROOM)

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return {"roomName": data} if isinstance(data, str) else data


class PageIn(Payload):
    """``{offset?, limit?}`` of a paged list; any other payload (none, a bare
    value of the original) reads the first page."""

    offset: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return data if isinstance(data, dict) else {}


class RoomPageIn(RoomIn):
    offset: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1)


class MemberIn(Payload):
    identity: Name = Field(validation_alias=MEMBER)
    room_name: Name = Field(validation_alias=ROOM)
    role: str = "guest"


class RemoveIn(Payload):
    identity: Name = Field(validation_alias=MEMBER)
    room_name: Name = Field(validation_alias=ROOM)


class TargetIn(Payload):
    target: Name = Field(validation_alias=TARGET)
    room_name: Name = Field(validation_alias=ROOM)


class RoleIn(TargetIn):
    role: str


class MuteIn(Payload):
    target: Name = Field(validation_alias=TARGET)
    room_name: Name | None = Field(None, validation_alias=ROOM)
    duration: Any = None  # checked by the mute service (a bool is not a duration)


class UnmuteIn(Payload):
    target: Name = Field(validation_alias=TARGET)
    room_name: Name | None = Field(None, validation_alias=ROOM)


class ModeIn(Payload):
    room_name: Any = Field(None, validation_alias=ROOM)
    mode: Any = None


class PolicyIn(Payload):
    policy: Any = None


class AssignIn(Payload):
    client_room: Name = Field(validation_alias=AliasChoices("clientRoom", "roomName", "identity"))
    extensions: list[Name]


class OptionalRoomIn(Payload):
    room_name: Name | None = Field(None, validation_alias=ROOM)

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return {"roomName": data} if isinstance(data, str) else data
