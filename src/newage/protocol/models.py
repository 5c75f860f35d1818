"""Inbound payload models, one per event (with the original protocol's field aliases).

Models accept unknown fields (clients send extra, informational ones) but
type-check every field the server reads. Strings are bounded so that a
single event cannot make the server hold megabytes of junk per field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from newage.errors import bad_request

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=1_000_000)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, str_strip_whitespace=False)


def check_shape(value: Any, max_depth: int) -> None:
    """Refuse payloads nested deeper than ``max_depth`` (orjson cannot re-emit
    very deep data, and nothing legitimate needs it)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise bad_request(f"Payload nested too deeply (limit {max_depth} levels).")
        stack.extend((child, depth + 1) for child in children)


def validation_message(event: str, exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "payload"
    msg = error["msg"]
    if error["type"] == "model_type" or error["type"] == "dict_type":
        msg = "expected an object"
    return f"Invalid {event} payload: {where}: {msg}."


def bare_string(field: str) -> Any:
    """Before-validator turning a bare string payload into ``{field: value}``."""

    def convert(data: Any) -> Any:
        return {field: data} if isinstance(data, str) else data

    return convert


# ---------------------------------------------------------------- /auth, /sillytavern, /clients
class ClientIdIn(Payload):
    client_id: Name = Field(validation_alias=AliasChoices("clientId", "targetClientId"))


class OptionalClientIdIn(Payload):
    client_id: Name | None = Field(
        None, validation_alias=AliasChoices("clientId", "targetClientId")
    )


class TargetClientIn(Payload):
    # GENERATE/REMOVE_CLIENT_KEY: the extension sends {clientId, targetClientId};
    # the target is targetClientId.
    target_client_id: Name = Field(validation_alias=AliasChoices("targetClientId"))
    # REMOVE_CLIENT_KEY: one key of the client (as listed), else all of them
    fingerprint: Annotated[str, StringConstraints(max_length=64)] | None = None


class IdentityIn(Payload):
    identity: Name


class IdentifyIn(Payload):
    client_id: Name = Field(validation_alias=AliasChoices("clientId"))
    password: Annotated[str, StringConstraints(max_length=1000)] | None = None


class LoginIn(Payload):
    client_id: Name | None = Field(None, validation_alias=AliasChoices("clientId"))
    password: Annotated[str, StringConstraints(max_length=1000)] | None = None


class TrustIn(Payload):
    client_id: Name = Field(validation_alias=AliasChoices("clientId", "targetClientId"))
    client_type: str = Field("client", validation_alias=AliasChoices("clientType", "type"))
    password: Annotated[str, StringConstraints(max_length=1000)] | None = None
    remember_me: bool | None = Field(
        None, validation_alias=AliasChoices("rememberMe", "Remember_me")
    )


class DisconnectClientIn(Payload):
    identity: Name | None = Field(None, validation_alias=AliasChoices("identity", "targetIdentity"))
    client_id: Name | None = Field(
        None, validation_alias=AliasChoices("clientId", "targetClientId")
    )


# ---------------------------------------------------------------- /function_call
class FunctionCallIn(Payload):
    request_id: Any = Field(
        None, validation_alias=AliasChoices("requestId"), serialization_alias="requestId"
    )
    function_name: Name = Field(
        validation_alias=AliasChoices("functionName"), serialization_alias="functionName"
    )
    args: Any = None
    target: Name | None = None
