"""OpenAI's shapes: the request body, completion objects, SSE frames, errors.

Nothing here knows about newage's domain beyond :class:`NewAgeError`; the
routes in ``openai.py`` put the pieces together.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from newage.errors import ErrorCode, NewAgeError, bad_request

RETRY_AFTER_SECONDS = 5
PING = b": ping\n\n"
DONE = b"data: [DONE]\n\n"

# code -> (status, OpenAI error type); a code missing here (one added
# later) keeps the status errors.py gives it
ERRORS: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.BAD_REQUEST: (400, "invalid_request_error"),
    ErrorCode.TOO_LARGE: (413, "invalid_request_error"),
    ErrorCode.UNAUTHENTICATED: (401, "authentication_error"),
    ErrorCode.FORBIDDEN: (403, "permission_error"),
    ErrorCode.NOT_FOUND: (404, "invalid_request_error"),
    ErrorCode.CONFLICT: (409, "invalid_request_error"),
    ErrorCode.STREAM_GONE: (410, "invalid_request_error"),
    ErrorCode.RATE_LIMITED: (429, "rate_limit_error"),
    ErrorCode.UNAVAILABLE: (503, "service_unavailable_error"),
    ErrorCode.TIMEOUT: (504, "timeout_error"),
    ErrorCode.UPSTREAM: (502, "api_error"),
    ErrorCode.INTERNAL: (500, "api_error"),
}
RETRY_STATUSES = frozenset({429, 503})

ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
RoomName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class ChatCompletionIn(BaseModel):
    """The fields read; the rest (temperature, tools...) travel as sent."""

    model_config = ConfigDict(extra="allow")
    model: ModelName
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: RoomName | None = None

    @classmethod
    def parse(cls, body: bytes) -> ChatCompletionIn:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise bad_request("The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise bad_request("The body must be a JSON object.")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"])
            raise bad_request(f"{param}: {first['msg']}", param=param) from None

    def prompt(self) -> str:
        """The request text: the last user message."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        raise bad_request("messages must contain a user message.", param="messages")

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def recorded(self) -> dict[str, Any]:
        """What goes into history and to the extension with the request."""
        return {
            **(self.model_extra or {}),
            "message": self.prompt(),
            "messages": [m.model_dump(exclude_none=True) for m in self.messages],
            "model": self.model,
            "source": "openai",
        }


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per four characters, rounded up."""
    return (len(text) + 3) // 4


def usage(request: ChatCompletionIn, answer: str) -> dict[str, int]:
    prompt = sum(estimate_tokens(m.text()) for m in request.messages)
    completion = estimate_tokens(answer)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def error_status(exc: NewAgeError) -> tuple[int, dict[str, str]]:
    status, _ = ERRORS.get(exc.code, (exc.http_status, "api_error"))
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in RETRY_STATUSES else {}
    return status, headers


def error_body(exc: NewAgeError) -> dict[str, Any]:
    _, kind = ERRORS.get(exc.code, (exc.http_status, "api_error"))
    param = exc.extra.get("param")
    code = "model_not_found" if param == "model" else exc.code.value
    return {"error": {"message": exc.message, "type": kind, "param": param, "code": code}}


def completion(
    request_id: str, created: int, model: str, text: str, usage_: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_,
        "system_fingerprint": None,
    }


class ChunkWriter:
    """The SSE frames of one streamed completion (one id and ``created``)."""

    def __init__(self, request_id: str, created: int, model: str, with_usage: bool) -> None:
        self.request_id = request_id
        self.created = created
        self.model = model
        self.with_usage = with_usage
        self.seq = 0

    def frame(self, payload: dict[str, Any], event_id: int | None = None) -> bytes:
        self.seq = self.seq + 1 if event_id is None else event_id
        return b"id: %d\ndata: %s\n\n" % (self.seq, orjson.dumps(payload))

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, seq: int | None = None
    ) -> bytes:
        """``seq``: the piece's seq in the stream log; its event id is
        ``seq + 1`` (id 1 is the opening chunk), so ``Last-Event-ID`` says
        where to resume."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self.frame(self._base([choice]), None if seq is None else seq + 1)

    def usage(self, usage_: dict[str, int]) -> bytes:
        return self.frame({**self._base([]), "usage": usage_})

    def error(self, exc: NewAgeError) -> bytes:
        return self.frame(error_body(exc))

    def _base(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.with_usage:
            base["usage"] = None
        return base
