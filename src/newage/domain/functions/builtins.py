"""The built-in server functions of the original: file access, kept confined.

``readJsonFromFile`` and ``saveJsonToFile`` reach the files area (and the
extension's two legacy settings paths); ``addStaticResources`` publishes
files of the area over HTTP. Outside the legacy paths all three are
sensitive operations (docs/security.md): admins, over loopback while
``networkSafe`` is on.
"""

from __future__ import annotations

import re
from typing import Any

from newage.clock import iso_now
from newage.domain.functions.files import RESTRICTED, FileArea
from newage.domain.functions.service import (
    CallContext,
    FunctionRegistry,
    LegacySettingsFiles,
    ServerFunction,
    normalize_path,
)
from newage.domain.functions.static import BUILTIN_MOUNTS, StaticMappings
from newage.domain.identity.principal import ConnMode, require_sensitive
from newage.domain.ports.records import StaticMapping
from newage.domain.ports.store import Store
from newage.errors import ErrorCode, NewAgeError, bad_request, forbidden, unauthenticated
from newage.settings import LiveSettings

BOOTSTRAP_FUNCTIONS = frozenset({"readJsonFromFile"})
# permission failures fail the call itself; file problems are reported inside
# the function's result, as the original does
DENIED = frozenset({ErrorCode.FORBIDDEN, ErrorCode.UNAUTHENTICATED})

# URL paths the server answers itself; the Socket.IO path is added per call.
RESERVED_URLS = ("/", "/index.html")
RESERVED_PREFIXES = (*BUILTIN_MOUNTS, "/healthz", "/readyz", "/metrics")
MAX_RESOURCES = 100
MAX_URL_CHARS = 512
# '%', '?' and '#' never reach a mapping as such (requests are matched on the
# decoded path), so a mapping containing them could never be served
_URL_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\%?#]")
RESOURCES_SHAPE = "resources must be an object mapping URL paths to paths in the files area"


def check_url_path(url: Any, socket_io_path: str) -> str:
    """The URL path of a mapping, without trailing slashes; raise if unusable."""
    if not isinstance(url, str) or not url.startswith("/"):
        raise bad_request("urlPath must start with '/'.")
    if len(url) > MAX_URL_CHARS:
        raise bad_request(f"urlPath is too long (at most {MAX_URL_CHARS} characters).")
    if _URL_FORBIDDEN.search(url):
        raise bad_request("urlPath must not contain control characters, '\\', '%', '?' or '#'.")
    trimmed = url.rstrip("/") or "/"
    parts = trimmed.split("/")[1:] if trimmed != "/" else []
    if any(part in ("", ".", "..") for part in parts):
        raise bad_request("urlPath must not contain empty, '.' or '..' segments.")
    if any(part.startswith(".") for part in parts):
        raise bad_request("urlPath must not name hidden files.")
    reserved = (*RESERVED_PREFIXES, socket_io_path.rstrip("/") or "/socket.io")
    if trimmed in RESERVED_URLS or any(
        trimmed == prefix or trimmed.startswith(prefix + "/") for prefix in reserved
    ):
        raise bad_request(f"urlPath {trimmed} is reserved by the server.")
    return trimmed


class StaticResources:
    """``addStaticResources``: URL mappings into the files area, persisted
    in the store and served by the HTTP layer (docs/protocol.md)."""

    def __init__(self, store: Store, mappings: StaticMappings, area: FileArea) -> None:
        self.store = store
        self.mappings = mappings
        self.area = area

    async def add(
        self, ctx: CallContext, resources: dict[str, Any], socket_io_path: str
    ) -> dict[str, Any]:
        if len(resources) > MAX_RESOURCES:
            raise bad_request(f"At most {MAX_RESOURCES} resources per call.")
        results: list[dict[str, Any]] = []
        for url, target in resources.items():
            try:
                url_path = check_url_path(url, socket_io_path)
                relative = self._target(target)
                await self.store.put_static_mapping(StaticMapping(url_path, relative, iso_now()))
                self.mappings.set(url_path, relative)
            except NewAgeError as exc:
                results.append({"urlPath": url, "status": "error", "message": exc.message})
            else:
                results.append({"urlPath": url, "status": "success"})
        return {"success": all(r["status"] == "success" for r in results), "results": results}

    def _target(self, target: Any) -> str:
        if not isinstance(target, str) or not target:
            raise bad_request("The path must be a non-empty string.")
        relative = normalize_path(target)
        if LegacySettingsFiles.is_legacy(relative):
            # the same paths the file functions refuse (docs/protocol.md §4)
            raise forbidden(RESTRICTED)
        self.area.existing(relative)
        return relative


def _resources(args: tuple[Any, ...]) -> dict[str, Any]:
    """One object, or several merged in order (the args rule may wrap or spread)."""
    if not args:
        raise bad_request(f"Invalid arguments for addStaticResources: {RESOURCES_SHAPE}.")
    merged: dict[str, Any] = {}
    for item in args:
        if not isinstance(item, dict):
            raise bad_request(f"Invalid arguments for addStaticResources: {RESOURCES_SHAPE}.")
        merged.update(item)
    return merged


def register_file_functions(
    registry: FunctionRegistry,
    area: FileArea,
    legacy: LegacySettingsFiles,
    live: LiveSettings,
    static: StaticResources,
) -> None:
    async def read_json_from_file(ctx: CallContext, file_path: Any = None) -> dict[str, Any]:
        path = normalize_path(file_path)
        if legacy.is_legacy(path):
            try:
                return await legacy.read(ctx, path)
            except NewAgeError as exc:
                if exc.code in DENIED:
                    raise
                # the original reports file problems inside the result
                return {"success": False, "error": {"message": exc.message, "code": exc.code.value}}
        if ctx.mode is not ConnMode.FULL:
            raise unauthenticated("Key required.")
        require_sensitive(ctx.principal, live.current.network_safe, allow_extension=False)
        try:
            return {"success": True, "result": area.read_json(path)}
        except NewAgeError as exc:
            return {"success": False, "error": {"message": exc.message, "code": exc.code.value}}

    async def save_json_to_file(
        ctx: CallContext, file_path: Any = None, json_data: Any = None
    ) -> dict[str, Any]:
        path = normalize_path(file_path)
        if legacy.is_legacy(path):
            try:
                return await legacy.write(ctx, path, json_data)
            except NewAgeError as exc:
                if exc.code in DENIED:
                    raise
                # the original returns the error as a string here
                return {"success": False, "error": exc.message}
        require_sensitive(ctx.principal, live.current.network_safe, allow_extension=False)
        try:
            area.save_json(path, json_data)
        except NewAgeError as exc:
            return {"success": False, "error": exc.message}
        return {"success": True}

    async def add_static_resources(ctx: CallContext, *resources: Any) -> dict[str, Any]:
        merged = _resources(resources)
        return await static.add(ctx, merged, live.current.socket_io_path)

    registry.register(ServerFunction("readJsonFromFile", read_json_from_file))
    registry.register(ServerFunction("saveJsonToFile", save_json_to_file))
    registry.register(ServerFunction("addStaticResources", add_static_resources, sensitive=True))
