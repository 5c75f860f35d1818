"""The one error type of the server.

Domain code raises :class:`NewAgeError`; the realtime layer turns it into an
ack or a connect refusal and the HTTP layer into a status code. Keeping the
conversions here means a message reads the same on every surface.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired
# from real annotations at run time (Python 3.11)
from enum import StrEnum
from typing import Any, Literal, NotRequired, cast

from typing_extensions import TypedDict


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    QUEUE_FULL = "queue_full"  # too much pending work; try again later
    BAD_SETTINGS = "bad_settings"  # a settings value or file that does not validate
    INTERNAL = "internal"
    UPSTREAM = "upstream"  # the extension failed the request
    STREAM_GONE = "stream_gone"  # the stream log no longer has what was asked


_HTTP_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.QUEUE_FULL: 429,
    ErrorCode.BAD_SETTINGS: 400,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UPSTREAM: 502,
    ErrorCode.STREAM_GONE: 410,
}


class ErrorAck(TypedDict, closed=True):
    """The one failure ack (docs/protocol.md section 2); ``extra`` fields
    ride along, those the wire uses listed here."""

    status: Literal["error"]
    success: Literal[False]
    message: str
    code: str
    requestId: NotRequired[str]
    requestStatus: NotRequired[str]
    param: NotRequired[str]
    # GET_SILLYTAVERN_EXTENSION without any: the original's empty lists
    extensions: NotRequired[list[str]]
    allTheSTSocket: NotRequired[list[str]]


class FunctionError(TypedDict):
    message: str
    code: str


class FunctionAck(TypedDict):
    """A ``FUNCTION_CALL`` ack, its own shape (docs/protocol.md section 11).
    A forwarded call's answer keeps the extra fields of the client's."""

    requestId: Any
    success: bool
    status: Literal["ok", "error"]
    result: NotRequired[Any]
    error: NotRequired[FunctionError]


class NewAgeError(Exception):
    """A failure that is reported to the caller, never a crash.

    ``extra`` fields are merged into the ack so that callers can correlate
    (``requestId``) or render details; they must never carry secrets.
    """

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self.code]

    def to_ack(self) -> ErrorAck:
        ack = {
            "status": "error",
            "success": False,
            "message": self.message,
            "code": self.code.value,
        }
        # the extras are the raiser's keyword arguments: typed by ErrorAck
        return cast(ErrorAck, ack | self.extra)

    def to_connect_refusal(self) -> tuple[str, dict[str, Any]]:
        """(message, data) for a Socket.IO CONNECT_ERROR packet."""
        return self.message, {"status": "error", "message": self.message, "code": self.code.value}

    def to_function_result(self, request_id: Any) -> FunctionAck:
        """Shape of a failed FUNCTION_CALL ack (the original's convention)."""
        return {
            "requestId": request_id,
            "success": False,
            "status": "error",
            "error": {"message": self.message, "code": self.code.value},
        }

    def __repr__(self) -> str:
        return f"NewAgeError({self.code.value!r}, {self.message!r})"


def bad_request(message: str, **extra: Any) -> NewAgeError:
    return NewAgeError(ErrorCode.BAD_REQUEST, message, **extra)


def forbidden(message: str = "Unauthorized", **extra: Any) -> NewAgeError:
    return NewAgeError(ErrorCode.FORBIDDEN, message, **extra)


def not_found(message: str, **extra: Any) -> NewAgeError:
    return NewAgeError(ErrorCode.NOT_FOUND, message, **extra)


def conflict(message: str, **extra: Any) -> NewAgeError:
    return NewAgeError(ErrorCode.CONFLICT, message, **extra)


def unavailable(message: str, **extra: Any) -> NewAgeError:
    return NewAgeError(ErrorCode.UNAVAILABLE, message, **extra)


def queue_full(message: str, **extra: Any) -> NewAgeError:
    return NewAgeError(ErrorCode.QUEUE_FULL, message, **extra)


def unauthenticated(message: str, **extra: Any) -> NewAgeError:
    return NewAgeError(ErrorCode.UNAUTHENTICATED, message, **extra)
