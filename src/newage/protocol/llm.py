"""Payload models of ``/llm``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field, StringConstraints, model_validator

from newage.protocol.models import Name, Payload

# bounds of the stream events, shared with realtime/fast_stream.py (which
# must never accept what these models refuse)
CHUNK_MAX = 1_000_000
ID_MAX = 200
INDEX_MAX = 10_000
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX)]
ROOM = AliasChoices("roomName", "room", "targetRoom")


def _chunk(value: Any) -> str:
    if type(value) is not str:
        raise ValueError("Input should be a valid string")
    if len(value) > CHUNK_MAX:
        raise ValueError(f"String should have at most {CHUNK_MAX} characters")
    return value


class LlmRequestIn(Payload):
    """``LLM_REQUEST``: the fields the server reads are typed here; every
    other field is the client's own and is recorded as sent. ``target``
    (a name or a list of names) is checked by routing, after the room."""

    request_id: Id = Field(alias="requestId")
    target_room: str | None = Field(None, alias="targetRoom")
    target: Any = None
    role: Any = None

    def fields(self) -> dict[str, Any]:
        """The request as the client sent it: wire names, extra fields included."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class StreamStartIn(Payload):
    type: int
    stream_id: Id = Field(validation_alias="streamId")
    output_id: Id = Field(validation_alias="outputId")
    num_streams: int = Field(5, ge=0, le=INDEX_MAX, validation_alias="numStreams")
    request_id: Any = Field(None, validation_alias="requestId")


class StreamDataIn(Payload):
    type: int
    stream_id: Id = Field(validation_alias="streamId")
    chunk_index: int = Field(ge=0, le=INDEX_MAX, validation_alias="chunkIndex")
    # may hold half of a UTF-16 pair (protocol/surrogates.py), which a
    # pydantic ``str`` refuses
    data: Annotated[Any, AfterValidator(_chunk)] = ""


# how an answer ended, as the extension reports it (``stopped``: its user
# pressed Stop, the text so far is the answer)
EndStatus = Literal["completed", "stopped"]


class StreamEndIn(Payload):
    type: int
    stream_id: Id = Field(validation_alias="streamId")
    final: bool = False
    status: EndStatus = "completed"


class NonStreamIn(Payload):
    type: int = 0
    data: Any = None
    request_id: Any = Field(None, validation_alias="requestId")
    output_id: Any = Field(None, validation_alias="outputId")
    status: Any = None  # "stopped" counts; other values are the client's own

    @property
    def stopped(self) -> bool:
        return bool(self.status == "stopped")


class CancelIn(Payload):
    request_id: Id = Field(validation_alias="requestId")


class ResumeIn(Payload):
    request_id: Id = Field(validation_alias="requestId")
    after_seq: int = Field(0, validation_alias="afterSeq", ge=0, strict=True)
    output_id: Id | None = Field(None, validation_alias="outputId")
    epoch: Id | None = None


class PriorityIn(Payload):
    request_id: Id = Field(validation_alias="requestId")
    priority: int = Field(ge=-1000, le=1000, strict=True)


class ExtensionErrorIn(Payload):
    message: Any = None
    error: Any = None
    request_id: Any = Field(None, validation_alias="requestId")


class RoomRefIn(Payload):
    """``{targetRoom}`` (typing, processing); absent means "everywhere"."""

    target_room: Name | None = Field(None, validation_alias=AliasChoices("targetRoom", "roomName"))
    request_id: Any = Field(None, validation_alias="requestId")


class EditIn(Payload):
    room_name: Any = Field(None, validation_alias=ROOM)
    message_id: Id | None = Field(None, validation_alias="messageId")
    response_id: Id | None = Field(None, validation_alias="responseId")
    updated_fields: Any = Field(
        None, validation_alias=AliasChoices("updatedFields", "updatedMessage")
    )
    from_llm: bool | None = Field(None, validation_alias="fromLlm")

    @model_validator(mode="after")
    def _text(self) -> EditIn:
        if isinstance(self.updated_fields, str):
            self.updated_fields = {"message": self.updated_fields}
        return self


def id_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, str) and v]


class DeleteIn(Payload):
    room_name: Any = Field(None, validation_alias=ROOM)
    message_ids: Any = Field(None, validation_alias=AliasChoices("messageIds", "messageId"))
    response_id: Any = Field(None, validation_alias="responseId")

    @property
    def ids(self) -> list[str]:
        return id_list(self.message_ids) + id_list(self.response_id)


class ClearIn(Payload):
    room_name: Any = Field(None, validation_alias=ROOM)
    clear_requests: bool = Field(True, validation_alias="clearRequests")
    clear_responses: bool = Field(True, validation_alias="clearResponses")


class ContextIn(Payload):
    room_name: Any = Field(None, validation_alias=ROOM)
    since: Any = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return {"roomName": data} if isinstance(data, str) else data


class HistoryPageIn(Payload):
    room_name: Any = Field(None, validation_alias=ROOM)
    before: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=500)
