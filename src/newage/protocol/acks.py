"""Acks the handlers return, one TypedDict per shape.

One way to build each kind (docs/protocol.md section 2): a success is the
dict literal ``{**OK, ...}`` annotated with (or returned as) its type, so
mypy checks its keys; a failure is ``NewAgeError.to_ack()`` (``ErrorAck``),
raised by the handler and answered by the dispatcher. ``FUNCTION_CALL``
keeps its own pair: :func:`function_ok` and
``NewAgeError.to_function_result``.

``ACKS`` maps each event to the success shapes its handler may return (most
have one); ``tests/test_protocol_contract.py`` checks it against the
handlers' return annotations and against ``docs/protocol.md``.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired
# from real annotations at run time (Python 3.11)
from typing import Any, Final, Literal, NotRequired

# typing_extensions' TypedDict: pydantic (the live contract test) needs it
# before Python 3.12, and it has PEP 728's closed
from typing_extensions import TypedDict

from newage.errors import ErrorAck, FunctionAck
from newage.protocol.names import Ev
from newage.protocol.outbound import Message, RequestEntry

__all__ = ["ACKS", "OK", "ErrorAck", "FunctionAck", "Ok", "function_ok"]


class _OkMark(TypedDict, closed=True):
    # closed: mypy then knows ``{**OK, ...}`` brings no other key, so the
    # literal type-checks against acks with optional keys too
    status: Literal["ok"]
    success: Literal[True]


OK: Final[_OkMark] = {"status": "ok", "success": True}


class Ok(TypedDict):
    status: Literal["ok"]
    success: Literal[True]


# ---------------------------------------------------------------- /auth, /sillytavern
class KeyIssued(Ok):
    clientId: str
    key: str
    Key: str
    fingerprint: str


class KeyMeta(TypedDict):
    clientId: str
    fingerprint: str
    createdAt: str
    lastUsedAt: str | None
    issued: bool


class KeyInfo(Ok, KeyMeta):
    """The top-level fields describe the newest key."""

    key: None
    hasKey: bool
    keys: list[KeyMeta]


class Extensions(Ok):
    extensions: list[str]
    allTheSTSocket: list[str]


class Identified(Ok):
    key: str


class IdentifiedAgain(TypedDict):
    """A second tab of an extension: the original's warning shape."""

    status: Literal["warning"]
    key: str
    message: str


# ---------------------------------------------------------------- /clients
class ClientListAck(Ok):
    clients: list[dict[str, Any]]
    nonSillyTavernClients: list[dict[str, Any]]


class AllKeys(Ok):
    keys: dict[str, dict[str, Any]]


class KeyCreated(Ok):
    clientId: str
    key: str
    fingerprint: str
    createdAt: str
    trusted: bool


class Disconnected(Ok):
    disconnected: int
    message: NotRequired[str]


class TrustedClients(Ok):
    clients: list[dict[str, Any]]


class TrustAdded(Ok):
    client: dict[str, Any]
    disconnected: int


class Identities(Ok):
    identities: list[dict[str, Any]]


class IdentityReleased(Ok):
    identity: str
    disconnected: int


# ---------------------------------------------------------------- /rooms
class RoomsPage(Ok):
    rooms: list[str]
    roomDetails: list[dict[str, Any]]
    total: int
    nextOffset: int | None


class RoomAck(Ok):
    roomName: str
    room: dict[str, Any]


class RoomNamed(Ok):
    roomName: str


class RoomMembers(Ok):
    roomName: str
    room: dict[str, Any]
    clients: list[dict[str, Any]]
    total: int
    nextOffset: int | None


class MemberAck(Ok):
    roomName: str
    identity: str
    role: str


class MemberRemoved(Ok):
    roomName: str
    identity: str


class Muted(Ok):
    identity: str
    roomName: str | None
    mutedUntil: str
    duration: int | str


class Unmuted(Ok):
    identity: str
    roomName: str | None
    message: NotRequired[str]


class ModeSet(Ok):
    roomName: str
    mode: str
    changed: bool


class DefaultModeSet(Ok):
    mode: str
    default: Literal[True]


class PolicyAck(Ok):
    policy: str


class Assigned(Ok):
    clientRoom: str
    extensions: list[str]


class Assignments(Ok):
    policy: str
    assignments: dict[str, list[str]]
    manualAssignments: dict[str, list[str]]


class RoomAssignments(Ok):
    roomName: str
    assignments: list[str]


class ExtensionList(Ok):
    extensions: list[str]


class ClientRooms(Ok):
    clientRooms: list[str]


# ---------------------------------------------------------------- history
class Edited(Ok):
    message: Message


class Deleted(Ok):
    messageIds: list[str]
    message: NotRequired[str]


class Cleared(Ok):
    cleared: int
    message: NotRequired[str]


class HistoryPage(Ok):
    roomName: str
    messages: list[Message]
    before: int | None
    hasMore: bool
    totalMessages: int


class ContextStarted(Ok):
    roomName: str
    totalMessages: int
    totalPages: int
    updateId: str


class OfflineSent(Ok):
    roomName: str
    since: str
    totalMessages: int


# ---------------------------------------------------------------- /llm
class RequestAccepted(Ok):
    message: str
    requestId: str
    messageId: str
    roomName: str
    mode: str
    forwarded: bool
    queued: bool
    targets: list[str]
    position: int
    epoch: str


class Answer(TypedDict):
    identity: str
    text: str


class RequestState(Ok):
    """``GET_REQUEST``, and ``LLM_REQUEST`` with an id already used (a retry)."""

    requestId: str
    messageId: str | None
    roomName: str
    mode: str
    requestStatus: str
    targets: list[str]
    position: int
    responseIds: list[str]
    answers: list[Answer]
    epoch: str
    duplicate: NotRequired[Literal[True]]


class Cancelled(Ok):
    requestId: str
    targets: list[str]


class Resumed(Ok):
    requestId: str
    epoch: str
    requestStatus: str | None
    outputId: str | None
    complete: bool
    lastSeq: int
    replayed: int


class Reprioritized(Ok):
    requestId: str
    positions: dict[str, int]


class ExtensionStates(Ok):
    extensions: list[dict[str, Any]]


class Reported(Ok):
    """An extension's ``ERROR`` or ``message``: taken, or what became of it."""

    message: NotRequired[str]
    requestId: NotRequired[str]


class Pong(Ok):
    type: int
    data: str
    source: str
    requestId: Any
    outputId: str


# ---------------------------------------------------------------- /function_call
def function_ok(request_id: Any, result: Any) -> FunctionAck:
    return {"requestId": request_id, "success": True, "status": "ok", "result": result}


# ---------------------------------------------------------------- /debug
class DebugMode(Ok):
    debugMode: bool


class ServerStatus(Ok):
    serverStatus: dict[str, Any]


class LogPage(Ok):
    lines: list[str]
    total: int
    page: int
    pageSize: int
    level: str
    filename: str
    search: str | None


class RequestsPage(Ok):
    requests: list[RequestEntry]
    total: int
    unanswered: NotRequired[list[str]]  # a cluster: the nodes that did not answer in time


class OneRequest(Ok):
    request: RequestEntry


class SeriesView(TypedDict):
    intervalMs: int
    windowSeconds: int
    series: dict[str, list[float | None]]
    totals: dict[str, int]


class Series(Ok, SeriesView):
    extensions: list[dict[str, Any]]
    unanswered: NotRequired[list[str]]  # a cluster: the nodes that did not answer in time


class AuditPage(Ok):
    entries: list[dict[str, Any]]
    total: int


ACKS: dict[str, tuple[type, ...]] = {
    Ev.CLIENT_DISCONNECTED: (Ok,),
    # /auth, /sillytavern, /clients
    Ev.LOGIN: (KeyIssued,),
    Ev.GET_CLIENT_KEY: (KeyInfo,),
    Ev.GET_SILLYTAVERN_EXTENSION: (Extensions,),
    Ev.IDENTIFY_SILLYTAVERN: (Identified, IdentifiedAgain),
    Ev.CLIENT_SETTINGS: (Ok,),
    Ev.GET_CLIENT_LIST: (ClientListAck,),
    Ev.UPDATE_CONNECTED_CLIENTS: (ClientListAck,),
    Ev.GET_ALL_CLIENT_KEYS: (AllKeys,),
    Ev.GENERATE_CLIENT_KEY: (KeyCreated,),
    Ev.REMOVE_CLIENT_KEY: (Disconnected,),
    Ev.GET_TRUSTED_CLIENTS: (TrustedClients,),
    Ev.ADD_TRUSTED_CLIENT: (TrustAdded,),
    Ev.REMOVE_TRUSTED_CLIENT: (Disconnected,),
    Ev.DISCONNECT_CLIENT: (Disconnected,),
    Ev.GET_IDENTITIES: (Identities,),
    Ev.RELEASE_IDENTITY: (IdentityReleased,),
    # /rooms (GET_ROOMS on /clients answers a bare array of names)
    Ev.GET_ROOMS: (RoomsPage,),
    Ev.CREATE_ROOM: (RoomAck,),
    Ev.DELETE_ROOM: (RoomNamed,),
    Ev.GET_CLIENTS_IN_ROOM: (RoomMembers,),
    Ev.ADD_CLIENT_TO_ROOM: (MemberAck,),
    Ev.SET_MEMBER_ROLE: (MemberAck,),
    Ev.REMOVE_CLIENT_FROM_ROOM: (MemberRemoved,),
    Ev.KICK_MEMBER: (MemberRemoved,),
    Ev.MUTE_MEMBER: (Muted,),
    Ev.UNMUTE_MEMBER: (Unmuted,),
    Ev.SET_ROOM_MESSAGE_REQUEST_MODE: (ModeSet,),
    Ev.SET_MESSAGE_REQUEST_MODE: (ModeSet, DefaultModeSet),
    Ev.SET_CONNECTION_POLICY: (PolicyAck,),
    Ev.GET_CONNECTION_POLICY: (PolicyAck,),
    Ev.ASSIGN_EXTENSION_TO_CLIENT: (Assigned,),
    Ev.GET_ASSIGNMENTS: (Assignments,),
    Ev.GET_ASSIGNMENTS_FOR_ROOM: (RoomAssignments,),
    Ev.GET_CONNECTED_EXTENSIONS: (ExtensionList,),
    Ev.GET_CONNECTED_CLIENT_ROOMS: (ClientRooms,),
    # history, on /llm and /rooms
    Ev.EDIT_MESSAGE: (Edited,),
    Ev.DELETE_MESSAGE: (Deleted,),
    Ev.CLEAR_MESSAGES: (Cleared,),
    Ev.GET_HISTORY_PAGE: (HistoryPage,),
    # /llm
    Ev.LLM_REQUEST: (RequestAccepted, RequestState),
    Ev.CANCEL_REQUEST: (Cancelled,),
    Ev.RESUME_STREAM: (Resumed,),
    Ev.GET_REQUEST: (RequestState,),
    Ev.SET_REQUEST_PRIORITY: (Reprioritized,),
    Ev.GET_EXTENSIONS_STATE: (ExtensionStates,),
    Ev.GET_FULL_CONTEXT: (ContextStarted,),
    Ev.GET_OFFLINE_MESSAGES: (ContextStarted, OfflineSent),
    Ev.START_TYPING: (Ok,),
    Ev.STOP_TYPING: (Ok,),
    Ev.START_PROCESSING: (Ok,),
    Ev.STOP_PROCESSING: (Ok,),
    Ev.ERROR: (Reported,),
    Ev.MESSAGE: (Reported, Pong),
    Ev.CLIENT_STREAM_START: (Ok,),
    Ev.CLIENT_STREAM_DATA_FIRST: (Ok,),
    Ev.CLIENT_STREAM_DATA_MIDDLE: (Ok,),
    Ev.CLIENT_STREAM_DATA_LAST: (Ok,),
    Ev.CLIENT_STREAM_DATA_RETRY: (Ok,),
    Ev.CLIENT_STREAM_DATA_FAILED: (Ok,),
    Ev.CLIENT_STREAM_END: (Ok,),
    Ev.FUNCTION_CALL: (FunctionAck,),
    # /debug
    Ev.TOGGLE_DEBUG_MODE: (DebugMode,),
    Ev.SERVER_STATUS: (ServerStatus,),
    Ev.READ_LOG: (LogPage,),
    Ev.GET_REQUESTS: (RequestsPage, OneRequest),
    Ev.GET_METRICS_SERIES: (Series,),
    Ev.GET_AUDIT_LOG: (AuditPage,),
}
