"""Server-side functions callable through ``FUNCTION_CALL`` with ``target: 'server'``.

A registry of named async functions, each with an optional pydantic model
for its positional arguments. Built-ins are registered by the app;
third-party code registers with :func:`server_function` or through the
``newage.functions`` entry-point group (see docs/protocol.md).

Two legacy paths of the extension are not file access (DECISIONS 16/17):
``readJsonFromFile('./settings/<clientId>-settings.json')`` returns the
caller's own trust entry without secrets, and
``saveJsonToFile('./settings/server_settings.json', {...})`` applies known
server settings through the settings validation.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from newage.domain.principal import ConnMode, Principal, require_sensitive
from newage.errors import (
    ErrorCode,
    NewAgeError,
    bad_request,
    forbidden,
    not_found,
    unauthenticated,
    unavailable,
)
from newage.protocol.names import Ev, Namespace
from newage.settings import FIELD_BY_FILE_KEY, PUBLIC_FIELDS, LiveSettings, SettingsError
from newage.store.base import Store

SETTINGS_PREFIX = "settings/"
SERVER_SETTINGS_PATH = "settings/server_settings.json"


@dataclass(frozen=True, slots=True)
class CallContext:
    principal: Principal
    mode: ConnMode


FunctionImpl = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ServerFunction:
    name: str
    impl: FunctionImpl  # called as impl(ctx, *args) or impl(ctx, model)
    args_model: type[BaseModel] | None = None
    sensitive: bool = False  # DECISIONS 5 gate


@dataclass
class FunctionRegistry:
    functions: dict[str, ServerFunction] = field(default_factory=dict)

    def register(self, fn: ServerFunction) -> None:
        if fn.name in self.functions:
            raise ValueError(f"server function {fn.name!r} is already registered")
        self.functions[fn.name] = fn

    def get(self, name: str) -> ServerFunction:
        fn = self.functions.get(name)
        if fn is None:
            raise not_found(f'Function "{name}" not found.')
        return fn


_PENDING: list[ServerFunction] = []


def server_function(
    name: str, *, args_model: type[BaseModel] | None = None, sensitive: bool = False
) -> Callable[[FunctionImpl], FunctionImpl]:
    """Decorator for third-party server functions (registered at start-up).

    With ``args_model`` the positional arguments are validated as the
    model's fields in declaration order and the function receives
    ``(ctx, model)``; without, it receives ``(ctx, *args)``.
    """

    def mark(impl: FunctionImpl) -> FunctionImpl:
        _PENDING.append(ServerFunction(name, impl, args_model, sensitive))
        return impl

    return mark


def decorated_functions() -> list[ServerFunction]:
    return list(_PENDING)


def normalize_path(value: Any) -> str:
    """A client path as a relative POSIX path (``./a\\b`` -> ``a/b``)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise bad_request("filePath must be a non-empty string.")
    path = posixpath.normpath(value.replace("\\", "/"))
    while path.startswith("./"):
        path = path[2:]
    return path


def spread_args(args: Any) -> list[Any]:
    """Array -> spread; absent -> none; any other value -> one argument."""
    if args is None:
        return []
    if isinstance(args, list):
        return args
    return [args]


def bind_args(fn: ServerFunction, args: list[Any]) -> Any:
    assert fn.args_model is not None
    names = list(fn.args_model.model_fields)
    if len(args) > len(names):
        raise bad_request(f"{fn.name} takes at most {len(names)} arguments ({len(args)} given).")
    try:
        return fn.args_model.model_validate(dict(zip(names, args, strict=False)))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise bad_request(f"Invalid arguments for {fn.name}: {where}: {error['msg']}.") from None


class LegacySettingsFiles:
    """The extension's two settings 'files' (DECISIONS 16/17)."""

    def __init__(self, store: Store, live: LiveSettings) -> None:
        self.store = store
        self.live = live

    @staticmethod
    def is_legacy(path: str) -> bool:
        return path.startswith(SETTINGS_PREFIX) or path == "settings"

    async def read(self, ctx: CallContext, path: str) -> dict[str, Any]:
        if path == SERVER_SETTINGS_PATH:
            current = self.live.current.to_file_dict()
            return {"success": True, "result": {key: current[key] for key in PUBLIC_FIELDS}}
        own = f"{SETTINGS_PREFIX}{ctx.principal.client_id}-settings.json"
        if path != own:
            raise forbidden("Access denied: File is restricted.")
        entry = await self.store.get_trust(ctx.principal.client_id)
        if entry is None:
            raise not_found("No settings for this client.")
        return {
            "success": True,
            "result": {
                "clientId": entry.client_id,
                "clientType": entry.kind.value,
                "isTrust": entry.trusted,
                "Remember_me": entry.remember_me,
            },
        }

    async def write(self, ctx: CallContext, path: str, data: Any) -> dict[str, Any]:
        if path != SERVER_SETTINGS_PATH:
            raise forbidden("Access denied: File is restricted.")
        require_sensitive(ctx.principal, self.live.current.network_safe, allow_extension=True)
        if not isinstance(data, dict):
            raise bad_request("jsonData must be an object.")
        known = {k: v for k, v in data.items() if k in FIELD_BY_FILE_KEY}
        try:
            self.live.apply(known)
        except SettingsError as exc:
            raise bad_request(exc.line) from None
        ignored = sorted(set(data) - set(known))
        result: dict[str, Any] = {"success": True}
        if ignored:
            result["ignored"] = ignored
        return result


def function_error(exc: NewAgeError, data: Any) -> dict[str, Any]:
    request_id = data.get("requestId") if isinstance(data, dict) else None
    return exc.to_function_result(request_id)


class FunctionService:
    """Runs server functions and forwards calls to other clients."""

    def __init__(
        self,
        registry: FunctionRegistry,
        presence: Any,
        outbox: Any,
        live: LiveSettings,
        bootstrap_functions: frozenset[str],
    ) -> None:
        self.registry = registry
        self.presence = presence
        self.outbox = outbox
        self.live = live
        self.bootstrap_functions = bootstrap_functions
        # target sid -> futures of calls waiting on it, failed at once when it goes
        self._waiting: dict[str, set[asyncio.Future[Any]]] = {}

    async def call_server(self, ctx: CallContext, name: str, args: Any) -> Any:
        fn = self.registry.get(name)
        if ctx.mode is not ConnMode.FULL and name not in self.bootstrap_functions:
            raise unauthenticated("Key required.")
        if fn.sensitive:
            require_sensitive(ctx.principal, self.live.current.network_safe, allow_extension=False)
        positional = spread_args(args)
        if fn.args_model is not None:
            return await fn.impl(ctx, bind_args(fn, positional))
        try:
            return await fn.impl(ctx, *positional)
        except TypeError as exc:
            if "positional argument" in str(exc):
                raise bad_request(f"Invalid arguments for {name}: {exc}") from None
            raise

    def _target_sid(self, target: str) -> str | None:
        sids = self.presence.full_sids(target, Namespace.FUNCTION_CALL)
        if not sids:
            sids = [
                ref.sid
                for ref in self.presence.client_sids(target)
                if ref.namespace == Namespace.FUNCTION_CALL and ref.mode is ConnMode.FULL
            ]
        return sids[-1] if sids else None  # the most recently connected

    async def forward(self, payload: dict[str, Any], target: str) -> Any:
        sid = self._target_sid(target)
        if sid is None:
            raise unavailable(f'Target "{target}" is not connected.')
        timeout = self.live.current.function_call_timeout / 1000
        call = asyncio.ensure_future(
            self.outbox.call(Namespace.FUNCTION_CALL, sid, Ev.FUNCTION_CALL, payload, timeout)
        )
        waiting = self._waiting.setdefault(sid, set())
        waiting.add(call)
        try:
            answer = await call
        except TimeoutError:
            raise NewAgeError(
                ErrorCode.TIMEOUT, f'Function call to "{target}" timed out.'
            ) from None
        except asyncio.CancelledError:
            if call.cancelled() and not _current_cancelled():
                raise unavailable(f'Target "{target}" disconnected during the call.') from None
            raise
        finally:
            waiting.discard(call)
            if not waiting:
                self._waiting.pop(sid, None)
        if isinstance(answer, dict):
            return answer
        return {"requestId": payload.get("requestId"), "success": True, "result": answer}

    def socket_gone(self, sid: str) -> None:
        for call in self._waiting.pop(sid, set()):
            call.cancel()


def _current_cancelled() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())
