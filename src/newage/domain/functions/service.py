"""``FUNCTION_CALL``: the server-function registry and calls forwarded to clients.

A registry of named async functions, each with an optional pydantic model
for its positional arguments. Built-ins are registered by the app;
third-party code registers with :func:`server_function` or through the
``newage.functions`` entry-point group (:func:`load_entry_point_functions`).

Two legacy paths of the extension are not file access (docs/protocol.md §4):
``readJsonFromFile('./settings/<clientId>-settings.json')`` returns the
caller's own trust entry without secrets, and
``saveJsonToFile('./settings/server_settings.json', {...})`` applies known
server settings through the settings validation.
"""

from __future__ import annotations

import asyncio
import inspect
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from newage.domain.functions.files import RESTRICTED
from newage.domain.identity.principal import ConnMode, Principal, require_sensitive
from newage.domain.ports.store import Store
from newage.errors import (
    ErrorCode,
    NewAgeError,
    bad_request,
    forbidden,
    not_found,
    queue_full,
    unauthenticated,
    unavailable,
)
from newage.logs import log
from newage.protocol.acks import FunctionAck, function_ok
from newage.protocol.names import Ev, Namespace
from newage.protocol.outbound import ForwardedCall
from newage.settings import (
    EXTENSION_WRITABLE,
    FIELD_BY_FILE_KEY,
    PUBLIC_FIELDS,
    LiveSettings,
)

SETTINGS_PREFIX = "settings/"
LEGACY_DIRS = ("settings", "keys")
SERVER_SETTINGS_PATH = "settings/server_settings.json"
ENTRY_POINT_GROUP = "newage.functions"
MAX_PATH_CHARS = 1024


@dataclass(frozen=True, slots=True)
class CallContext:
    principal: Principal
    mode: ConnMode


# async functions; plain ones are accepted too
FunctionImpl = Callable[..., Awaitable[Any] | Any]


@dataclass(frozen=True, slots=True)
class ServerFunction:
    name: str
    impl: FunctionImpl  # called as impl(ctx, *args) or impl(ctx, model)
    args_model: type[BaseModel] | None = None
    sensitive: bool = False  # admin-only (docs/security.md)


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


# ---------------------------------------------------------------- third-party functions
_PENDING: list[ServerFunction] = []


def server_function(
    name: str, *, args_model: type[BaseModel] | None = None, sensitive: bool = False
) -> Callable[[FunctionImpl], FunctionImpl]:
    """Decorator for third-party server functions (registered at start-up).

    With ``args_model`` the positional arguments are validated as the
    model's fields in declaration order and the function receives
    ``(ctx, model)``; without, it receives ``(ctx, *args)``. The decorated
    callable may also be named by a ``newage.functions`` entry point.
    """

    def mark(impl: FunctionImpl) -> FunctionImpl:
        fn = ServerFunction(name, impl, args_model, sensitive)
        _PENDING.append(fn)
        setattr(impl, "__newage_function__", fn)  # noqa: B010 (mypy: no such attribute)
        return impl

    return mark


def decorated_functions() -> list[ServerFunction]:
    return list(_PENDING)


def as_server_function(obj: Any) -> ServerFunction | None:
    """A :class:`ServerFunction`, or a callable decorated with :func:`server_function`."""
    if isinstance(obj, ServerFunction):
        return obj
    marked = getattr(obj, "__newage_function__", None)
    return marked if isinstance(marked, ServerFunction) else None


def load_entry_point_functions(
    registry: FunctionRegistry, group: str = ENTRY_POINT_GROUP
) -> list[str]:
    """Register the functions of installed packages; return their names.

    A broken plugin is logged and skipped: it must not keep the server
    from starting. Names already taken (built-ins first) are kept.
    """
    loaded: list[str] = []
    for ep in entry_points(group=group):
        try:
            fn = as_server_function(ep.load())
        except Exception:
            log.exception("server function entry point %s failed to load", ep.value)
            continue
        if fn is None:
            log.warning(
                "entry point %s is neither a ServerFunction nor decorated with server_function",
                ep.value,
            )
            continue
        existing = registry.functions.get(fn.name)
        if existing is not None:
            if existing is not fn:
                log.warning("server function %r of %s is already registered", fn.name, ep.value)
            continue
        registry.register(fn)
        loaded.append(fn.name)
    return loaded


# ---------------------------------------------------------------- arguments
def normalize_path(value: Any) -> str:
    """A client path as a relative POSIX path (``./a\\b`` -> ``a/b``)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise bad_request("filePath must be a non-empty string without NUL characters.")
    if len(value) > MAX_PATH_CHARS:
        raise bad_request(f"filePath is too long (at most {MAX_PATH_CHARS} characters).")
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
    fields = fn.args_model.model_fields
    names = [info.alias or name for name, info in fields.items()]
    if len(args) > len(names):
        raise bad_request(
            f"Invalid arguments for {fn.name}: takes at most {len(names)} "
            f"arguments ({len(args)} given)."
        )
    try:
        return fn.args_model.model_validate(dict(zip(names, args, strict=False)))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        raise bad_request(f"Invalid arguments for {fn.name}: {where}: {error['msg']}.") from None


def check_arity(fn: ServerFunction, args: list[Any]) -> None:
    """Refuse a call the function's signature cannot take, before calling it
    (a TypeError from inside the function is a bug, not bad arguments)."""
    try:
        inspect.signature(fn.impl).bind(None, *args)
    except TypeError as exc:
        raise bad_request(f"Invalid arguments for {fn.name}: {exc}.") from None
    except ValueError:  # no signature (a builtin): let the call decide
        return


# ---------------------------------------------------------------- legacy settings paths
class LegacySettingsFiles:
    """The extension's two settings 'files' (docs/protocol.md §4)."""

    def __init__(self, store: Store, live: LiveSettings) -> None:
        self.store = store
        self.live = live

    @staticmethod
    def is_legacy(path: str) -> bool:
        """Below ``settings/`` or ``keys/``: the two legacy paths, every other
        one refused (docs/protocol.md §4), whatever exists in the files area."""
        return any(path == d or path.startswith(d + "/") for d in LEGACY_DIRS)

    async def read(self, ctx: CallContext, path: str) -> dict[str, Any]:
        if path == SERVER_SETTINGS_PATH:
            # the extension's settings form (and admins); nobody else's business
            if not (ctx.principal.is_admin or ctx.principal.is_extension):
                raise forbidden(RESTRICTED)
            current = self.live.current.to_file_dict()
            return {"success": True, "result": {key: current[key] for key in PUBLIC_FIELDS}}
        own = f"{SETTINGS_PREFIX}{ctx.principal.client_id}-settings.json"
        if path != own:
            raise forbidden(RESTRICTED)
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
            raise forbidden(RESTRICTED)
        require_sensitive(ctx.principal, self.live.current.network_safe, allow_extension=True)
        if not isinstance(data, dict):
            raise bad_request("jsonData must be an object.")
        # the extension's form may change what the form shows; admins any setting
        writable = FIELD_BY_FILE_KEY if ctx.principal.is_admin else EXTENSION_WRITABLE
        known = {k: v for k, v in data.items() if k in writable}
        if known:
            await self.live.apply(known)  # a SettingsError says which value is wrong
        ignored = sorted(set(data) - set(known))
        result: dict[str, Any] = {"success": True}
        if ignored:
            result["ignored"] = ignored
        return result


def function_error(exc: NewAgeError, data: Any) -> FunctionAck:
    request_id = data.get("requestId") if isinstance(data, dict) else None
    return exc.to_function_result(request_id)


def relayed(answer: Any, request_id: Any) -> FunctionAck:
    """A forwarded call's answer as the caller's ack: unchanged when it has
    the function-result shape (plus the fields it lacks), else its result."""
    if isinstance(answer, dict) and "success" in answer:
        out = dict(answer)
        out.setdefault("requestId", request_id)
        out.setdefault("status", "ok" if answer["success"] is True else "error")
        # the client's own shape, relayed with whatever else it carries
        return cast(FunctionAck, out)
    return function_ok(request_id, answer)


# ---------------------------------------------------------------- the service
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
        # target sid -> calls waiting on it, cancelled at once when it goes
        self._waiting: dict[str, set[asyncio.Future[Any]]] = {}
        self._calls_of: dict[str, int] = {}  # caller clientId -> its forwarded calls waiting
        # a cluster: (target, payload, timeout) -> one call per other node
        # with sockets of the target; each returns that node's first answer
        self.elsewhere: Callable[[str, ForwardedCall, float], list[Awaitable[Any]]] | None = None

    async def call_server(self, ctx: CallContext, name: str, args: Any) -> Any:
        fn = self.registry.get(name)
        if ctx.mode is not ConnMode.FULL and name not in self.bootstrap_functions:
            raise unauthenticated("Key required.")
        if fn.sensitive:
            require_sensitive(ctx.principal, self.live.current.network_safe, allow_extension=False)
        positional = spread_args(args)
        try:
            if fn.args_model is not None:
                result = fn.impl(ctx, bind_args(fn, positional))
            else:
                check_arity(fn, positional)
                result = fn.impl(ctx, *positional)
            # plain functions are accepted too
            return await result if inspect.isawaitable(result) else result
        except NewAgeError:
            raise
        except Exception:
            # the text of an unexpected exception may show paths or data:
            # it goes to the log, the caller gets what normal dispatch says
            log.exception("server function %s failed", name)
            raise NewAgeError(ErrorCode.INTERNAL, f"Server function {name} failed.") from None

    def target_sids(self, target: str) -> list[str]:
        """The keyed ``/function_call`` sockets of an identity, else of a clientId."""
        sids = self.presence.full_sids(target, Namespace.FUNCTION_CALL)
        if not sids:
            sids = [
                ref.sid
                for ref in self.presence.client_sids(target)
                if ref.namespace == Namespace.FUNCTION_CALL and ref.mode is ConnMode.FULL
            ]
        return list(sids)

    async def forward(
        self, payload: ForwardedCall, target: str, caller: str | None = None
    ) -> FunctionAck:
        """Send the call to every socket of ``target``; the first answer wins,
        later ones are dropped. ``caller`` (a clientId) has a cap on calls
        waiting at once."""
        if caller is None:
            return await self._forward(payload, target)
        cap = self.live.current.max_pending_function_calls
        if self._calls_of.get(caller, 0) >= cap:
            raise queue_full(f"Too many function calls waiting ({cap}); wait for an answer.")
        self._calls_of[caller] = self._calls_of.get(caller, 0) + 1
        try:
            return await self._forward(payload, target)
        finally:
            left = self._calls_of[caller] - 1
            if left:
                self._calls_of[caller] = left
            else:
                del self._calls_of[caller]

    async def _forward(self, payload: ForwardedCall, target: str) -> FunctionAck:
        timeout = self.live.current.function_call_timeout / 1000
        remote = self.elsewhere(target, payload, timeout) if self.elsewhere is not None else []
        answer = await self.answer(payload, target, timeout, remote)
        if answer is None:
            raise unavailable(f'Target "{target}" did not answer the call.')
        return relayed(answer, payload.get("requestId"))

    async def answer(
        self,
        payload: ForwardedCall,
        target: str,
        timeout: float,
        remote: list[Awaitable[Any]] | None = None,
    ) -> Any:
        """The first answer of the target's sockets here and of the calls to
        other nodes (``remote``), as the client gave it; None when every one
        acked without a value."""
        sids = self.target_sids(target)
        if not sids and not remote:
            raise unavailable(f'Target "{target}" is not connected.')
        calls: dict[str, asyncio.Future[Any]] = {}
        for sid in sids:
            call = asyncio.ensure_future(
                self.outbox.call(Namespace.FUNCTION_CALL, sid, Ev.FUNCTION_CALL, payload, timeout)
            )
            calls[sid] = call
            self._waiting.setdefault(sid, set()).add(call)
        others = [asyncio.ensure_future(call) for call in remote or ()]
        try:
            return await self._first_answer([*calls.values(), *others], target, timeout)
        finally:
            for other in others:
                other.cancel()
            for sid, call in calls.items():
                call.cancel()
                waiting = self._waiting.get(sid)
                if waiting is not None:
                    waiting.discard(call)
                    if not waiting:
                        del self._waiting[sid]

    async def _first_answer(
        self, calls: list[asyncio.Future[Any]], target: str, timeout: float
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = set(calls)
        timed_out = empty = False
        while pending:
            done, pending = await asyncio.wait(
                pending,
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                timed_out = True
                break
            for call in done:
                if call.cancelled():
                    continue  # that socket went away
                error = call.exception()
                if isinstance(error, TimeoutError):
                    timed_out = True
                elif error is not None:
                    log.warning("forwarding a call to %s failed: %r", target, error)
                elif call.result() is None:
                    empty = True  # an ack without an answer does not count
                else:
                    return call.result()
        if timed_out:
            raise NewAgeError(ErrorCode.TIMEOUT, f'Function call to "{target}" timed out.')
        if empty:
            return None
        raise unavailable(f'Target "{target}" disconnected during the call.')

    def socket_gone(self, sid: str) -> None:
        for call in self._waiting.pop(sid, set()):
            call.cancel()
