"""Payloads of the events the server emits (S→C, S→X), one TypedDict each.

TypedDicts are plain dicts at run time: building an event through its type
costs nothing, so the streaming path (``SERVER_STREAM_DATA``, once per
token) uses them too, while mypy checks every key and value. Keys are the
wire's camelCase. ``OUTBOUND`` maps each emitted event to its type;
``tests/test_protocol_contract.py`` compares it with the field lists of
``docs/protocol.md`` and validates what a live server sends against it.
Nested objects whose fields belong to another part (a stored message, a room
view, a request entry) stay ``dict[str, Any]``.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired
# from real annotations at run time (Python 3.11)
from typing import Any, Literal, NotRequired

# typing_extensions' TypedDict: pydantic (the live contract test) needs it
# before Python 3.12, and it has PEP 728's closed
from typing_extensions import TypedDict

from newage.protocol.names import Ev

Message = dict[str, Any]  # a recorded message as the history keeps it


# ---------------------------------------------------------------- generic
class ErrorEvent(TypedDict):
    """``ERROR``: a failed event sent without an ack (the error ack plus
    ``event``), a muted requester, or an extension's own failure report."""

    message: str
    status: NotRequired[Literal["error"]]
    success: NotRequired[Literal[False]]
    code: NotRequired[str]
    event: NotRequired[str]
    requestId: NotRequired[str | None]
    requestStatus: NotRequired[str]
    param: NotRequired[str]
    extensions: NotRequired[list[str]]
    allTheSTSocket: NotRequired[list[str]]
    error: NotRequired[Any]


class Warning(TypedDict):
    message: str
    roomName: str


# ---------------------------------------------------------------- /auth, /clients
class KeyAssigned(TypedDict):
    """``CLIENT_KEY_ASSIGNED``: a key (ok), a password still needed
    (pending) or the issuance refused (error)."""

    success: bool
    status: Literal["ok", "pending", "error"]
    clientId: NotRequired[str]
    key: NotRequired[str]
    Key: NotRequired[str]
    fingerprint: NotRequired[str]
    message: NotRequired[str]
    code: NotRequired[str]


class ClientList(TypedDict):
    clients: list[dict[str, Any]]
    nonSillyTavernClients: list[dict[str, Any]]


# ---------------------------------------------------------------- /rooms
class RoomCreated(TypedDict):
    roomName: str
    room: dict[str, Any]


class RoomDeleted(TypedDict):
    roomName: str
    message: str


class MemberJoined(TypedDict):
    clientId: str
    identity: str
    roomName: str
    role: str


class MemberLeft(TypedDict):
    clientId: str
    identity: str
    roomName: str


class MemberRoleChanged(TypedDict):
    clientId: str
    identity: str
    targetIdentity: str
    roomName: str
    role: str
    newRole: str
    previousRole: str | None


class MemberMuted(TypedDict):
    identity: str
    mutedBy: str
    mutedUntil: str
    duration: int | str  # seconds, or 'permanent'
    roomName: str | None


class MemberUnmuted(TypedDict):
    identity: str
    unmutedBy: str
    roomName: str | None


class MemberStatus(TypedDict):
    identity: str
    roomName: str
    status: str
    timestamp: str


class RoomModeChanged(TypedDict):
    roomName: str
    mode: str
    setter: str


class AvailableExtensions(TypedDict):
    extensions: list[str]


class AssignmentsView(TypedDict):
    policy: str
    assignments: dict[str, list[str]]
    manualAssignments: dict[str, list[str]]
    extensions: list[str]
    clientRooms: list[str]


# ---------------------------------------------------------------- /llm: history
class NewMessage(TypedDict):
    roomName: str
    message: Message


class MessageUpdated(TypedDict):
    roomName: str
    message: Message


class MessagesDeleted(TypedDict):
    roomName: str
    messageIds: list[str]


class MessagesCleared(TypedDict):
    roomName: str
    clearedRequests: bool
    clearedResponses: bool


class ContextPage(TypedDict):
    updateId: str
    roomName: str
    pageNumber: int
    totalPages: int
    isLastPage: bool
    contextPage: list[Message]


class Context(TypedDict):
    roomName: str
    updateId: str
    context: list[Message]


class OfflineMessages(TypedDict):
    roomName: str
    since: str
    messages: list[Message]
    hasMore: bool


# ---------------------------------------------------------------- /llm: answers
class StreamData(TypedDict):
    requestId: str
    outputId: str
    streamId: str
    chunkIndex: int
    type: int
    data: str
    source: str
    identity: str
    roomName: str
    seq: int
    chunks: int


class StreamEnd(TypedDict):
    requestId: str
    outputId: str | None
    streamId: str | None
    source: str
    identity: str
    roomName: str
    status: str
    data: str
    continued: bool


class NonStream(TypedDict):
    """``message``: a non-stream answer to the room, or the connection
    test's pong (which has no ``identity`` and ``roomName``)."""

    type: int
    data: str
    source: str
    requestId: Any
    outputId: str
    identity: NotRequired[str]
    roomName: NotRequired[str]


class LlmResponse(TypedDict):
    roomName: str
    requestId: str
    responseId: str
    messageId: str
    identity: str
    data: str
    message: str
    outputId: str
    status: str


class StatusDetail(TypedDict, total=False):
    message: str  # why it failed
    position: int  # queued: the place in the extension's queue
    target: str  # queued, forwarded, stalled: the extension


class RequestStatusUpdate(StatusDetail):
    mode: str
    roomName: str
    requestId: str
    responseId: str | None
    status: str


class LlmRequestBody(TypedDict):
    """What a request's targets share; each copy gets its ``target``."""

    mode: str
    requestId: str
    targetRoom: str
    context: list[Message]
    requestType: str
    type: NotRequired[str]
    requestingIdentity: NotRequired[str | None]
    currentRequest: NotRequired[Message]
    message: NotRequired[str]
    instruction: NotRequired[str]


class LlmRequestOut(LlmRequestBody):
    """``LLM_REQUEST`` forwarded to an extension (S→X)."""

    target: str


class CancelOut(TypedDict):
    """``CANCEL_REQUEST`` to an extension still on the request (S→X)."""

    requestId: str
    targetRoom: str


class Ping(TypedDict):
    t: float


class Caller(TypedDict):
    """The authenticated caller of a forwarded ``FUNCTION_CALL``."""

    clientId: str
    identity: str
    kind: str


class ForwardedCall(TypedDict):
    """``FUNCTION_CALL`` to the target client: the caller's payload (its
    extra fields pass through) with ``caller`` set by the server."""

    functionName: str
    caller: Caller
    requestId: NotRequired[Any]
    args: NotRequired[Any]
    target: NotRequired[str]


# ---------------------------------------------------------------- /debug
class DebugModeChanged(TypedDict):
    debugMode: bool


class RequestEntry(TypedDict):
    """A monitor's ``<request>`` (``REQUEST_STATE``, ``GET_REQUESTS``)."""

    requestId: str
    roomName: str
    requester: str | None
    mode: str
    kind: str
    state: str
    reason: str | None
    position: int | None
    targets: dict[str, str]
    createdAt: str
    finishedAt: str | None
    queueWaitMs: int | None
    firstTokenMs: int | None
    durationMs: int | None
    tokens: int
    trace: NotRequired[list[dict[str, Any]]]
    node: NotRequired[str]  # a cluster: the node holding it, when not the one asked


OUTBOUND: dict[str, type] = {
    Ev.ERROR: ErrorEvent,
    Ev.WARNING: Warning,
    Ev.CLIENT_KEY_ASSIGNED: KeyAssigned,
    Ev.UPDATE_CONNECTED_CLIENTS: ClientList,
    Ev.CONNECTED_CLIENTS_UPDATE: ClientList,
    Ev.ROOM_CREATED: RoomCreated,
    Ev.DELETE_ROOM: RoomDeleted,
    Ev.MEMBER_JOINED: MemberJoined,
    Ev.MEMBER_LEFT: MemberLeft,
    Ev.MEMBER_ROLE_CHANGED: MemberRoleChanged,
    Ev.MEMBER_MUTED: MemberMuted,
    Ev.MEMBER_UNMUTED: MemberUnmuted,
    Ev.MEMBER_STATUS_UPDATE: MemberStatus,
    Ev.ROOM_MODE_CHANGED: RoomModeChanged,
    Ev.AVAILABLE_EXTENSIONS: AvailableExtensions,
    Ev.ASSIGNMENTS_UPDATED: AssignmentsView,
    Ev.NEW_MESSAGE: NewMessage,
    Ev.MESSAGE_UPDATED: MessageUpdated,
    Ev.MESSAGES_DELETED: MessagesDeleted,
    Ev.MESSAGES_CLEARED: MessagesCleared,
    Ev.UPDATE_CONTEXT_PAGE: ContextPage,
    Ev.UPDATE_CONTEXT: Context,
    Ev.OFFLINE_MESSAGES: OfflineMessages,
    Ev.SERVER_STREAM_DATA: StreamData,
    Ev.SERVER_STREAM_END: StreamEnd,
    Ev.MESSAGE: NonStream,
    Ev.LLM_RESPONSE: LlmResponse,
    Ev.REQUEST_STATUS_UPDATE: RequestStatusUpdate,
    Ev.LLM_REQUEST: LlmRequestOut,
    Ev.CANCEL_REQUEST: CancelOut,
    Ev.PING_EXTENSION: Ping,
    Ev.REQUEST_STATE: RequestEntry,
    Ev.FUNCTION_CALL: ForwardedCall,
    Ev.DEBUG_MODE_CHANGED: DebugModeChanged,
}
