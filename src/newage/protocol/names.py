"""Wire vocabulary: namespaces, event names, stream types, modes, policies.

Mirrors ``docs/protocol.md``; ``tests/test_protocol_contract.py`` fails when
the two drift apart. Event names are the string values the original clients
use (the key equals the value for every event).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Namespace(StrEnum):
    DEFAULT = "/"
    AUTH = "/auth"
    LLM = "/llm"
    FUNCTION_CALL = "/function_call"
    ROOMS = "/rooms"
    CLIENTS = "/clients"
    SILLYTAVERN = "/sillytavern"
    DEBUG = "/debug"


# Namespaces whose sockets make an identity "present" (start/end a session).
SESSION_NAMESPACES = frozenset({Namespace.DEFAULT, Namespace.LLM})
# Namespaces on which chat-room membership is mirrored as Socket.IO rooms.
ROOM_MIRROR_NAMESPACES = (Namespace.DEFAULT, Namespace.LLM, Namespace.ROOMS)


class Ev(StrEnum):
    """Every Socket.IO event name the server listens to or emits."""

    # generic
    ERROR = "ERROR"
    WARNING = "WARNING"
    CLIENT_DISCONNECTED = "CLIENT_DISCONNECTED"

    # /auth, /sillytavern, /clients
    LOGIN = "LOGIN"
    CLIENT_KEY_ASSIGNED = "CLIENT_KEY_ASSIGNED"
    GET_CLIENT_KEY = "GET_CLIENT_KEY"
    GET_ALL_CLIENT_KEYS = "GET_ALL_CLIENT_KEYS"
    GENERATE_CLIENT_KEY = "GENERATE_CLIENT_KEY"
    REMOVE_CLIENT_KEY = "REMOVE_CLIENT_KEY"
    GET_CLIENT_LIST = "GET_CLIENT_LIST"
    UPDATE_CONNECTED_CLIENTS = "UPDATE_CONNECTED_CLIENTS"
    CONNECTED_CLIENTS_UPDATE = "CONNECTED_CLIENTS_UPDATE"
    GET_SILLYTAVERN_EXTENSION = "GET_SILLYTAVERN_EXTENSION"
    IDENTIFY_SILLYTAVERN = "IDENTIFY_SILLYTAVERN"
    CLIENT_SETTINGS = "CLIENT_SETTINGS"
    DISCONNECT_CLIENT = "DISCONNECT_CLIENT"
    GET_TRUSTED_CLIENTS = "GET_TRUSTED_CLIENTS"
    ADD_TRUSTED_CLIENT = "ADD_TRUSTED_CLIENT"
    REMOVE_TRUSTED_CLIENT = "REMOVE_TRUSTED_CLIENT"
    GET_IDENTITIES = "GET_IDENTITIES"
    RELEASE_IDENTITY = "RELEASE_IDENTITY"

    # /rooms
    GET_ROOMS = "GET_ROOMS"
    CREATE_ROOM = "CREATE_ROOM"
    ROOM_CREATED = "ROOM_CREATED"
    DELETE_ROOM = "DELETE_ROOM"
    GET_CLIENTS_IN_ROOM = "GET_CLIENTS_IN_ROOM"
    ADD_CLIENT_TO_ROOM = "ADD_CLIENT_TO_ROOM"
    REMOVE_CLIENT_FROM_ROOM = "REMOVE_CLIENT_FROM_ROOM"
    SET_MEMBER_ROLE = "SET_MEMBER_ROLE"
    KICK_MEMBER = "KICK_MEMBER"
    MUTE_MEMBER = "MUTE_MEMBER"
    UNMUTE_MEMBER = "UNMUTE_MEMBER"
    MEMBER_JOINED = "MEMBER_JOINED"
    MEMBER_LEFT = "MEMBER_LEFT"
    MEMBER_ROLE_CHANGED = "MEMBER_ROLE_CHANGED"
    MEMBER_MUTED = "MEMBER_MUTED"
    MEMBER_UNMUTED = "MEMBER_UNMUTED"
    SET_ROOM_MESSAGE_REQUEST_MODE = "SET_ROOM_MESSAGE_REQUEST_MODE"
    SET_MESSAGE_REQUEST_MODE = "SET_MESSAGE_REQUEST_MODE"
    ROOM_MODE_CHANGED = "ROOM_MODE_CHANGED"
    SET_CONNECTION_POLICY = "SET_CONNECTION_POLICY"
    GET_CONNECTION_POLICY = "GET_CONNECTION_POLICY"
    ASSIGN_EXTENSION_TO_CLIENT = "ASSIGN_EXTENSION_TO_CLIENT"
    GET_ASSIGNMENTS = "GET_ASSIGNMENTS"
    GET_ASSIGNMENTS_FOR_ROOM = "GET_ASSIGNMENTS_FOR_ROOM"
    GET_CONNECTED_EXTENSIONS = "GET_CONNECTED_EXTENSIONS"
    GET_CONNECTED_CLIENT_ROOMS = "GET_CONNECTED_CLIENT_ROOMS"
    AVAILABLE_EXTENSIONS = "AVAILABLE_EXTENSIONS"
    ASSIGNMENTS_UPDATED = "ASSIGNMENTS_UPDATED"

    # /llm
    LLM_REQUEST = "LLM_REQUEST"
    LLM_RESPONSE = "LLM_RESPONSE"
    NEW_MESSAGE = "NEW_MESSAGE"
    REQUEST_STATUS_UPDATE = "REQUEST_STATUS_UPDATE"
    EDIT_MESSAGE = "EDIT_MESSAGE"
    DELETE_MESSAGE = "DELETE_MESSAGE"
    CLEAR_MESSAGES = "CLEAR_MESSAGES"
    MESSAGE_UPDATED = "MESSAGE_UPDATED"
    MESSAGES_DELETED = "MESSAGES_DELETED"
    MESSAGES_CLEARED = "MESSAGES_CLEARED"
    GET_FULL_CONTEXT = "GET_FULL_CONTEXT"
    GET_HISTORY_PAGE = "GET_HISTORY_PAGE"
    GET_OFFLINE_MESSAGES = "GET_OFFLINE_MESSAGES"
    OFFLINE_MESSAGES = "OFFLINE_MESSAGES"
    UPDATE_CONTEXT = "UPDATE_CONTEXT"
    UPDATE_CONTEXT_PAGE = "UPDATE_CONTEXT_PAGE"
    MEMBER_STATUS_UPDATE = "MEMBER_STATUS_UPDATE"
    START_TYPING = "START_TYPING"
    STOP_TYPING = "STOP_TYPING"
    START_PROCESSING = "START_PROCESSING"
    STOP_PROCESSING = "STOP_PROCESSING"
    CANCEL_REQUEST = "CANCEL_REQUEST"
    RESUME_STREAM = "RESUME_STREAM"
    GET_REQUEST = "GET_REQUEST"
    SET_REQUEST_PRIORITY = "SET_REQUEST_PRIORITY"
    GET_EXTENSIONS_STATE = "GET_EXTENSIONS_STATE"
    PING_EXTENSION = "PING_EXTENSION"
    MESSAGE = "message"

    # stream events (extension -> server)
    CLIENT_STREAM_START = "CLIENT_STREAM_START"
    CLIENT_STREAM_DATA_FIRST = "CLIENT_STREAM_DATA_FIRST"
    CLIENT_STREAM_DATA_MIDDLE = "CLIENT_STREAM_DATA_MIDDLE"
    CLIENT_STREAM_DATA_LAST = "CLIENT_STREAM_DATA_LAST"
    CLIENT_STREAM_DATA_RETRY = "CLIENT_STREAM_DATA_RETRY"
    CLIENT_STREAM_DATA_FAILED = "CLIENT_STREAM_DATA_FAILED"
    CLIENT_STREAM_END = "CLIENT_STREAM_END"
    # stream events (server -> clients)
    SERVER_STREAM_DATA = "SERVER_STREAM_DATA"
    SERVER_STREAM_END = "SERVER_STREAM_END"

    # /function_call
    FUNCTION_CALL = "FUNCTION_CALL"

    # /debug
    TOGGLE_DEBUG_MODE = "TOGGLE_DEBUG_MODE"
    DEBUG_MODE_CHANGED = "DEBUG_MODE_CHANGED"
    SERVER_STATUS = "SERVER_STATUS"
    READ_LOG = "READ_LOG"
    GET_REQUESTS = "GET_REQUESTS"
    GET_METRICS_SERIES = "GET_METRICS_SERIES"
    GET_AUDIT_LOG = "GET_AUDIT_LOG"
    REQUEST_STATE = "REQUEST_STATE"  # /llm, to monitor-room


class StreamType(IntEnum):
    """Numeric ``type`` field of stream and non-stream payloads."""

    NON_STREAM = 0
    STREAM_START = 1
    STREAM_DATA = 2  # deprecated, never sent
    STREAM_END = 3
    STREAM_DATA_FIRST = 4
    STREAM_DATA_MIDDLE = 5
    STREAM_DATA_LAST = 6
    STREAM_DATA_RETRY = 7
    STREAM_DATA_FAILED = 8


STREAM_DATA_EVENTS = {
    Ev.CLIENT_STREAM_DATA_FIRST: StreamType.STREAM_DATA_FIRST,
    Ev.CLIENT_STREAM_DATA_MIDDLE: StreamType.STREAM_DATA_MIDDLE,
    Ev.CLIENT_STREAM_DATA_LAST: StreamType.STREAM_DATA_LAST,
}


class ClientKind(StrEnum):
    """What a trust entry lets a principal be. Bound to trust, never self-declared."""

    CLIENT = "client"
    SILLYTAVERN = "SillyTavern"
    MONITOR = "monitor"


# Declared ``auth.clientType`` values accepted for each trust kind.
EXTENSION_TYPES = frozenset({"SillyTavern", "extension"})


class RequestMode(StrEnum):
    IMMEDIATE = "Immediate"
    HOST_SUBMIT = "HostSubmit"
    MASTER_ONLY = "MasterOnly"
    CONVERSATIONAL = "Conversational"


MODE_ALIASES = {"Separate": RequestMode.IMMEDIATE, "Default": RequestMode.HOST_SUBMIT}


def parse_mode(value: object) -> RequestMode | None:
    """Canonical mode for a name or alias, ``None`` when unknown."""
    if not isinstance(value, str):
        return None
    if value in MODE_ALIASES:
        return MODE_ALIASES[value]
    try:
        return RequestMode(value)
    except ValueError:
        return None


class ConnectionPolicy(StrEnum):
    FREE = "Free"
    MANUAL = "Manual"
    BALANCED = "Balanced"
    BROADCAST = "Broadcast"
    RANDOM = "Random"


class Role(StrEnum):
    MASTER = "master"
    MANAGER = "manager"
    GUEST = "guest"


class MemberStatus(StrEnum):
    IDLE = "idle"
    TYPING = "typing"
    PROCESSING = "processing"
    PAUSED = "paused"
    MUTED = "muted"


class RequestStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    NOT_FORWARDED = "not_forwarded"
    PROCESSING = "processing"
    COMPLETED = "completed"
    STOPPED = "stopped"  # the extension's user stopped the generation
    CANCELLED = "cancelled"  # cancelled through CANCEL_REQUEST
    FAILED = "failed"


MONITOR_ROOM = "monitor-room"
SERVER_TARGET = "server"
GET_KEY = "getKey"
PING_TEXT = "Connection active?"
PONG_TEXT = "Yes,connection is fine."
SYSTEM_IDENTITY = "System"
THINK_PREFIX = "think_"
FOREVER = "9999-12-31T23:59:59.999Z"  # mutedUntil of a permanent mute
