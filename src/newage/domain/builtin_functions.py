"""The built-in server functions of the original: file access, kept confined."""

from __future__ import annotations

from typing import Any

from newage.domain.files import FileArea
from newage.domain.functions import (
    CallContext,
    FunctionRegistry,
    LegacySettingsFiles,
    ServerFunction,
    normalize_path,
)
from newage.domain.principal import ConnMode, require_sensitive
from newage.domain.staticmap import StaticMappings
from newage.errors import ErrorCode, NewAgeError, unauthenticated
from newage.settings import LiveSettings
from newage.store.base import Store

BOOTSTRAP_FUNCTIONS = frozenset({"readJsonFromFile"})
# permission failures fail the call itself; file problems are reported inside
# the function's result, as the original does
DENIED = frozenset({ErrorCode.FORBIDDEN, ErrorCode.UNAUTHENTICATED})


class StaticResources:
    """``addStaticResources``: URL mappings into the files area, persisted
    in the store and served by the HTTP layer (issue 6 fills this in)."""

    def __init__(self, store: Store, mappings: StaticMappings, area: FileArea) -> None:
        self.store = store
        self.mappings = mappings
        self.area = area

    async def add(self, ctx: CallContext, resources: Any) -> dict[str, Any]:
        raise NotImplementedError


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
        area.restricted = live.current.restricted_files
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
        area.restricted = live.current.restricted_files
        try:
            area.save_json(path, json_data)
        except NewAgeError as exc:
            return {"success": False, "error": exc.message}
        return {"success": True}

    registry.register(ServerFunction("readJsonFromFile", read_json_from_file))
    registry.register(ServerFunction("saveJsonToFile", save_json_to_file))
