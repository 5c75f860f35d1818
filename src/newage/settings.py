"""Server settings: ``settings/server_settings.json`` + ``NEWAGE_*`` + CLI flags.

The file keeps the original's camelCase keys (the extension reads and writes
it); Python code uses snake_case fields. Precedence: CLI flags > environment >
file > defaults. Unknown keys in the file are preserved when the server
rewrites it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from newage.errors import ErrorCode, NewAgeError
from newage.fsutil import atomic_write_json
from newage.logs import log
from newage.protocol.names import ConnectionPolicy, RequestMode, parse_mode

SETTINGS_DIR = "settings"
SERVER_SETTINGS_FILE = "server_settings.json"
ENV_PREFIX = "NEWAGE_"

DEFAULT_CONVERSATIONAL_INSTRUCTION = (
    "Review the conversation and recent system events ,then respond naturally "
    "if you have something relevant to add."
)


def setting(default: Any, key: str, **kwargs: Any) -> Any:
    """A field with its key in the JSON file."""
    return Field(default, json_schema_extra={"file_key": key}, **kwargs)


class SettingsError(NewAgeError):
    """A settings problem, rendered as one line: ``<where>: <field>: <problem>``
    (the message of the error; ``newage serve``/``check-config`` print it and
    exit with status 3)."""

    def __init__(self, where: str, field: str | None, problem: str) -> None:
        self.where, self.field, self.problem = where, field, problem
        super().__init__(ErrorCode.BAD_SETTINGS, self.line)

    @property
    def line(self) -> str:
        if self.field:
            return f"{self.where}: {self.field}: {self.problem}"
        return f"{self.where}: {self.problem}"


_file_data: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("_file_data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    # --- fields of the original server_settings.json (docs/protocol.md) ---
    server_port: int = setting(4000, "serverPort", ge=1, le=65535)
    server_address: str = setting("http://localhost", "serverAddress")
    static_resource: dict[str, str] = setting({}, "staticResouce")
    timeout: int = setting(5000, "timeout", ge=0)
    socket_io_path: str = setting("/socket.io", "socketIOPath")
    query_parameters: dict[str, Any] = setting({}, "queryParameters")
    transport: str = setting("websocket", "transport")
    network_safe: bool = setting(True, "networkSafe")
    debug_mode: bool = setting(False, "debugMode")
    context_page_size: int = setting(50, "contextPageSize", ge=1, le=1000)
    context_send_delay: int = setting(100, "contextSendDelay", ge=0, le=60000)
    default_room_message_request_mode: RequestMode = setting(
        RequestMode.IMMEDIATE, "defaultRoomMessageRequestMode"
    )
    restricted_files: list[str] = setting([], "restrictedFiles")
    conversational_think_probability: float = setting(
        0.3, "conversationalThinkProbability", ge=0, le=1
    )
    conversational_think_interval_min: int = setting(15000, "conversationalThinkIntervalMin", ge=0)
    conversational_think_interval_max: int = setting(60000, "conversationalThinkIntervalMax", ge=0)
    conversational_check_interval: int = setting(5000, "conversationalCheckInterval", ge=50)
    conversational_instruction: str = setting(
        DEFAULT_CONVERSATIONAL_INSTRUCTION, "conversationalInstruction"
    )
    post_unmute_instruction: str | None = setting(None, "postUnmuteInstruction")
    post_unmute_think_delay: int = setting(2000, "postUnmuteThinkDelay", ge=0)
    # written by the extension's settings form; client-side, kept for it
    reconnect_attempts: int = setting(10, "reconnectAttempts", ge=0)
    reconnect_delay: int = setting(1000, "reconnectDelay", ge=0)
    auto_connect: bool = setting(True, "autoConnect")

    # --- ours ---
    host: str = setting("127.0.0.1", "host")
    # the transport under the same ASGI app; granian is an optional extra
    # (docs/performance.md, "Transport candidates")
    asgi_server: Literal["uvicorn", "granian"] = setting("uvicorn", "asgiServer")
    # newage: uvicorn's websockets-sansio with the Engine.IO frames kept out
    # of ASGI after the handshake (realtime/direct_ws.py)
    uvicorn_ws: Literal["newage", "websockets-sansio", "websockets", "wsproto"] = setting(
        "newage", "uvicornWs"
    )
    connection_policy: ConnectionPolicy = setting(ConnectionPolicy.FREE, "connectionPolicy")
    cors_origins: list[str] = setting([], "corsOrigins")
    forwarded_allow_ips: list[str] = setting([], "forwardedAllowIps")
    max_payload_bytes: int = setting(1_000_000, "maxPayloadBytes", ge=1024, le=100_000_000)
    max_payload_depth: int = setting(32, "maxPayloadDepth", ge=2, le=200)
    ping_interval: int = setting(25000, "pingInterval", ge=1000)
    ping_timeout: int = setting(20000, "pingTimeout", ge=1000)
    request_timeout: int = setting(120000, "requestTimeout", ge=100)
    function_call_timeout: int = setting(30000, "functionCallTimeout", ge=100)
    stream_finalize_idle_ms: int = setting(5000, "streamFinalizeIdleMs", ge=50)
    stream_coalesce_ms: int = setting(10, "streamCoalesceMs", ge=0, le=20)
    completed_request_ttl: int = setting(600000, "completedRequestTtl", ge=1000)
    extension_concurrency: int = setting(1, "extensionConcurrency", ge=1, le=64)
    queue_timeout: int = setting(600000, "queueTimeout", ge=0)
    stall_timeout: int = setting(30000, "stallTimeout", ge=100)
    heartbeat_interval: int = setting(15000, "heartbeatInterval", ge=0)
    heartbeat_timeout: int = setting(10000, "heartbeatTimeout", ge=100)
    stream_log_retention_ms: int = setting(600000, "streamLogRetentionMs", ge=0)
    stream_log_max_bytes: int = setting(4_000_000, "streamLogMaxBytes", ge=0)
    stream_log_total_bytes: int = setting(256_000_000, "streamLogTotalBytes", ge=0)
    api_keep_alive_ms: int = setting(15000, "apiKeepAliveMs", ge=100, le=600000)
    mirror_to_monitors: bool = setting(True, "mirrorToMonitors")
    legacy_context_broadcast: bool = setting(False, "legacyContextBroadcast")
    emit_update_context: bool = setting(True, "emitUpdateContext")
    extension_context_limit: int = setting(100, "extensionContextLimit", ge=1, le=100000)
    max_pending_requests_per_client: int = setting(
        100, "maxPendingRequestsPerClient", ge=1, le=100_000
    )
    # GET /v1/chat/completions/{id}/stream readers of one clientId at once
    max_stream_readers_per_client: int = setting(
        16, "maxStreamReadersPerClient", ge=1, le=10_000
    )
    max_pending_requests_per_extension: int = setting(
        100, "maxPendingRequestsPerExtension", ge=1, le=100_000
    )
    max_pending_function_calls: int = setting(16, "maxPendingFunctionCalls", ge=1, le=10_000)
    # an answer goes out as data and message in one event: 2 x 1.9 MB stays
    # under the 4 MiB a stock python-socketio client reads per message
    max_answer_bytes: int = setting(1_000_000, "maxAnswerBytes", ge=1000, le=1_900_000)
    max_rooms_per_client: int = setting(20, "maxRoomsPerClient", ge=1, le=100_000)
    max_list_page: int = setting(1000, "maxListPage", ge=1, le=100_000)
    history_page_bytes: int = setting(1_000_000, "historyPageBytes", ge=10_000, le=3_000_000)
    extension_context_bytes: int = setting(
        2_000_000, "extensionContextBytes", ge=10_000, le=50_000_000
    )
    log_level: Literal["debug", "info", "warn", "error"] = setting("info", "logLevel")
    log_max_bytes: int = setting(10_000_000, "logMaxBytes", ge=10_000)
    log_backups: int = setting(5, "logBackups", ge=0, le=100)
    bcrypt_cost: int = setting(10, "bcryptCost", ge=4, le=15)
    auth_failure_limit: int = setting(20, "authFailureLimit", ge=1)
    key_issue_limit: int = setting(10, "keyIssueLimit", ge=1)
    key_issue_global_limit: int = setting(60, "keyIssueGlobalLimit", ge=1)
    max_keys_per_client: int = setting(8, "maxKeysPerClient", ge=1, le=1000)
    key_expiry_days: int = setting(30, "keyExpiryDays", ge=0, le=36500)
    sqlite_synchronous: Literal["FULL", "NORMAL"] = setting("FULL", "sqliteSynchronous")
    # empty: SQLite in the data directory; a postgresql:// URL: one store
    # shared by every server process and the CLI (README, "More than one process")
    database_url: str = setting("", "databaseUrl")
    database_pool_size: int = setting(10, "databasePoolSize", ge=1, le=1000)
    outbound_max_bytes: int = setting(16_000_000, "outboundMaxBytes", ge=100_000)
    outbound_max_age: int = setting(20000, "outboundMaxAge", ge=1000)
    max_connections: int = setting(5000, "maxConnections", ge=1)
    max_connections_per_address: int = setting(256, "maxConnectionsPerAddress", ge=1)
    handshake_rate_limit: int = setting(600, "handshakeRateLimit", ge=1)
    namespace_connect_timeout: int = setting(5000, "namespaceConnectTimeout", ge=100)
    audit_retention_days: int = setting(90, "auditRetentionDays", ge=1, le=36500)
    audit_max_entries: int = setting(100_000, "auditMaxEntries", ge=100, le=10_000_000)
    monitor_requests_kept: int = setting(500, "monitorRequestsKept", ge=10, le=100_000)
    metrics_sample_ms: int = setting(5000, "metricsSampleMs", ge=200, le=60_000)
    log_search_max_entries: int = setting(200_000, "logSearchMaxEntries", ge=100, le=10_000_000)
    personal_room_cleanup_days: int = setting(0, "personalRoomCleanupDays", ge=0, le=36500)
    # several processes as one cluster (docs/cluster.md); empty: a single process
    redis_url: str = setting("", "redisUrl")
    redis_prefix: str = setting("newage", "redisPrefix", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    @field_validator("default_room_message_request_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        mode = parse_mode(value)
        if mode is None:
            valid = ", ".join(m.value for m in RequestMode)
            raise ValueError(f"unknown mode {value!r} (valid: {valid}, Separate, Default)")
        return mode

    @field_validator("connection_policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        if value not in {p.value for p in ConnectionPolicy}:
            valid = ", ".join(p.value for p in ConnectionPolicy)
            raise ValueError(f"unknown policy {value!r} (valid: {valid})")
        return value

    @field_validator("socket_io_path")
    @classmethod
    def _sio_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("/") or len(value) < 2 or "//" in value or ".." in value:
            raise ValueError("must be an absolute URL path such as /socket.io")
        return value

    @field_validator("cors_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _str_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        if value and urlsplit(value).scheme not in DATABASE_SCHEMES:
            raise ValueError(
                "must be a postgresql:// URL, or empty for SQLite in the data directory"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return "warn" if value == "warning" else value

    @model_validator(mode="after")
    def _intervals(self) -> Settings:
        if self.conversational_think_interval_max < self.conversational_think_interval_min:
            raise ValueError(
                "conversationalThinkIntervalMax must be >= conversationalThinkIntervalMin"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, InitSettingsSource(settings_cls, _file_data.get({})))

    def to_file_dict(self) -> dict[str, Any]:
        """Every field under its file key, as JSON-ready values."""
        dumped = self.model_dump(mode="json")
        return {FILE_KEYS[name]: dumped[name] for name in FILE_KEYS}

    @property
    def think_interval_ms(self) -> tuple[int, int]:
        return self.conversational_think_interval_min, self.conversational_think_interval_max


DATABASE_SCHEMES = ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """``url`` without its password: safe for logs, errors and the audit trail."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _file_key(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    assert isinstance(extra, dict)
    key = extra["file_key"]
    assert isinstance(key, str)
    return key


FILE_KEYS: dict[str, str] = {name: _file_key(info) for name, info in Settings.model_fields.items()}
FIELD_BY_FILE_KEY: dict[str, str] = {key: name for name, key in FILE_KEYS.items()}
# The original's typo is canonical in the file; the fixed spelling is accepted.
FIELD_BY_FILE_KEY["staticResource"] = "static_resource"
# Runtime-only keys of the original that must never be loaded or written back.
IGNORED_FILE_KEYS = frozenset({"Rooms", "clientKeys", "sillyTavernPassword"})

# Fields the legacy extension settings form may change over the wire (docs/protocol.md §4).
EXTENSION_WRITABLE = frozenset(
    {
        "serverPort",
        "serverAddress",
        "networkSafe",
        "reconnectAttempts",
        "reconnectDelay",
        "timeout",
        "autoConnect",
        "socketIOPath",
        "queryParameters",
        "transport",
    }
)
# Fields the extension's key-less bootstrap may read (docs/protocol.md §4).
PUBLIC_FIELDS = ("serverPort", "serverAddress", "networkSafe", "socketIOPath", "transport")


def settings_path(data_dir: Path) -> Path:
    return data_dir / SETTINGS_DIR / SERVER_SETTINGS_FILE


def read_json_object(path: Path) -> dict[str, Any]:
    """Parse a JSON object file, raising :class:`SettingsError` with a precise line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(str(path), None, f"cannot read file ({exc.strerror})") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise SettingsError(
            str(path), None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(str(path), None, "must contain a JSON object")
    return data


def _describe(error: Any) -> str:
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if "input" in error and error["type"] not in {"missing"}:
        value = error["input"]
        if error["loc"] and error["loc"][0] == "database_url" and isinstance(value, str):
            value = redact_url(value)
        shown = json.dumps(value, default=str)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg = f"{msg} (got {shown})"
    return msg


def validate_settings(
    file_values: dict[str, Any],
    where: str,
    overrides: dict[str, Any] | None = None,
    *,
    use_env: bool = True,
) -> Settings:
    """Build :class:`Settings` from file values (by file key), env and overrides."""
    mapped: dict[str, Any] = {}
    for key, value in file_values.items():
        name = FIELD_BY_FILE_KEY.get(key)
        if name is not None:
            mapped[name] = value
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    token = _file_data.set(mapped)
    try:
        if use_env:
            return Settings(**overrides)
        return Settings.model_validate({**mapped, **overrides})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"]
        name = str(loc[0]) if loc else ""
        env_name = f"{ENV_PREFIX}{name.upper()}"
        if name in overrides:
            source, field = "command line", f"--{name.replace('_', '-')}"
        elif use_env and name and env_name in os.environ:
            source, field = "environment", env_name
        else:
            source = where
            field = FILE_KEYS.get(name, name) if name else "(settings)"
        if len(loc) > 1:
            field += "".join(f"[{part!r}]" for part in loc[1:])
        raise SettingsError(source, field, _describe(error)) from None
    finally:
        _file_data.reset(token)


def load_settings(
    data_dir: Path, config: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Load the server settings, writing the defaults when the file is missing."""
    path = config or settings_path(data_dir)
    if not path.exists():
        if config is not None:
            raise SettingsError(str(path), None, "file not found")
        defaults = validate_settings({}, str(path), use_env=False)
        atomic_write_json(path, defaults.to_file_dict())
    raw = read_json_object(path)
    if _legacy_open_defaults(raw):
        # Earlier versions wrote these permissive defaults into every new
        # file, so they were never a choice: keeping them would leave an
        # upgraded server open to every web page (docs/security.md).
        raw["corsOrigins"] = []
        if raw.get("forwardedAllowIps") == ["127.0.0.1"]:
            raw["forwardedAllowIps"] = []
        atomic_write_json(path, raw)
        log.warning(
            "%s: corsOrigins ['*'] was an old written default, now [] (loopback "
            "pages and the server's own origin stay allowed; add others there)",
            path,
        )
    return validate_settings(raw, str(path), overrides)


def _legacy_open_defaults(raw: dict[str, Any]) -> bool:
    """A file written by a version before the origin check: it has the old
    default ``corsOrigins: ['*']`` and none of the keys written since."""
    return raw.get("corsOrigins") == ["*"] and "outboundMaxBytes" not in raw


def update_settings_file(path: Path, changes: dict[str, Any]) -> Settings:
    """Apply file-key changes after validating the result; unknown keys survive.

    Validation ignores the environment so that a bad value is reported
    against the file even when an env var would mask it at start-up.
    """
    raw = read_json_object(path) if path.exists() else {}
    merged = {**raw, **changes}
    validated = validate_settings(merged, str(path), use_env=False)
    dumped = validated.to_file_dict()
    for key in changes:
        name = FIELD_BY_FILE_KEY.get(key)
        if name is not None:
            merged[FILE_KEYS[name]] = dumped[FILE_KEYS[name]]
    for key in IGNORED_FILE_KEYS:
        merged.pop(key, None)
    atomic_write_json(path, merged)
    return validated


class LiveSettings:
    """The running server's settings; replaced as a whole when they change.

    Services read ``live.current`` at the moment they need a value, so a
    change applied over the wire (debug toggle, the extension's settings
    form) takes effect without restarting. Listeners run after a swap.
    """

    def __init__(self, current: Settings, path: Path) -> None:
        self.current = current
        self.path = path
        self._listeners: list[Any] = []
        # one change at a time, in call order: each reads the file the
        # previous one wrote, so no change is lost to an interleaving
        self._writing = asyncio.Lock()
        # a cluster: told of each change made here, to pass it to the others
        self.on_applied: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        # True while listeners run for a change another node made: what that
        # node already did for everyone (audit record, notices) is not redone
        self.elsewhere = False

    def on_change(self, listener: Any) -> None:
        self._listeners.append(listener)

    async def apply(self, changes: dict[str, Any], *, elsewhere: bool = False) -> Settings:
        """Validate and persist file-key ``changes``, then make them live;
        ``elsewhere``: another cluster node made them (docs/cluster.md).

        The file is read, validated and written (with fsync) in a worker
        thread: the event loop keeps serving everyone else meanwhile.
        """
        async with self._writing:
            from_file = await asyncio.to_thread(update_settings_file, self.path, changes)
            updates = {
                FIELD_BY_FILE_KEY[key]: getattr(from_file, FIELD_BY_FILE_KEY[key])
                for key in changes
                if key in FIELD_BY_FILE_KEY
            }
            previous = self.current
            self.current = previous.model_copy(update=updates)
            self.elsewhere = elsewhere
            try:
                for listener in self._listeners:
                    listener(previous, self.current)
            finally:
                self.elsewhere = False
            current = self.current
        if self.on_applied is not None and not elsewhere:
            dumped = current.to_file_dict()
            await self.on_applied({FILE_KEYS[name]: dumped[FILE_KEYS[name]] for name in updates})
        return current
