"""/function_call: server functions, third-party functions, forwarding, permissions."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

from newage.domain.functions.builtins import check_url_path
from newage.domain.functions.service import (
    FunctionRegistry,
    ServerFunction,
    load_entry_point_functions,
    server_function,
)
from newage.errors import forbidden
from newage.protocol.names import ClientKind
from tests.helpers import actors
from tests.helpers.client import Peer, auth
from tests.helpers.wait import eventually, settle

FC = "/function_call"
REMOTE = {"X-Forwarded-For": "203.0.113.7"}


class EchoArgs(BaseModel):
    text: str = Field(max_length=20)
    times: int = 1


@server_function("testEcho", args_model=EchoArgs)
async def _echo(ctx: Any, args: EchoArgs) -> dict[str, Any]:
    return {"echo": args.text * args.times, "caller": ctx.principal.client_id}


async def call(peer, name, *args, target="server", rid="r1", timeout=5, raw_args=False) -> Any:
    data: dict[str, Any] = {"requestId": rid, "functionName": name, "target": target}
    if raw_args:
        data["args"] = args[0]
    elif args:
        data["args"] = list(args)
    return await peer.call(FC, "FUNCTION_CALL", data, timeout=timeout)


def failure(ack: dict[str, Any]) -> str | None:
    """The error message of a failed call, outer or inside the result; None on success."""
    if ack.get("success") is not True:
        return ack["error"]["message"]
    result = ack["result"]
    if isinstance(result, dict) and result.get("success") is False:
        error = result.get("error")
        return error["message"] if isinstance(error, dict) else error
    return None


# ---------------------------------------------------------------- built-in file functions
async def test_save_merges_creates_folders_and_read_returns_it(server, peers):
    admin = await actors.admin(server, peers, namespaces=(FC,))
    saved = await call(admin, "saveJsonToFile", "data/deep/x.json", {"a": 1, "b": 1})
    assert saved == {
        "requestId": "r1",
        "success": True,
        "status": "ok",
        "result": {"success": True},
    }
    await call(admin, "saveJsonToFile", "./data/deep/x.json", {"b": 2, "c": [1]})
    path = server.data_dir / "files" / "data" / "deep" / "x.json"
    assert path.read_text() == json.dumps({"a": 1, "b": 2, "c": [1]}, indent=2) + "\n"
    read = await call(admin, "readJsonFromFile", "data\\deep\\x.json", rid=7)
    assert read == {
        "requestId": 7,
        "success": True,
        "status": "ok",
        "result": {"success": True, "result": {"a": 1, "b": 2, "c": [1]}},
    }
    # a non-object file is replaced by the saved object
    (server.data_dir / "files" / "list.json").write_text("[1, 2]")
    await call(admin, "saveJsonToFile", "list.json", {"k": True})
    assert json.loads((server.data_dir / "files" / "list.json").read_text()) == {"k": True}


async def test_arguments_are_spread_wrapped_or_absent(server, peers):
    admin = await actors.admin(server, peers, namespaces=(FC,))
    (server.data_dir / "files" / "a.json").write_text('{"v": 1}')
    spread = await call(admin, "readJsonFromFile", ["a.json"], raw_args=True)
    wrapped = await call(admin, "readJsonFromFile", "a.json", raw_args=True)
    assert spread["result"] == wrapped["result"] == {"success": True, "result": {"v": 1}}
    absent = await call(admin, "readJsonFromFile")
    assert absent["success"] is False and absent["status"] == "error"
    assert absent["error"] == {
        "message": "filePath must be a non-empty string without NUL characters.",
        "code": "bad_request",
    }
    extra = await call(admin, "readJsonFromFile", "a.json", "b.json")
    assert extra["error"]["message"].startswith("Invalid arguments for readJsonFromFile:")
    assert "too many positional arguments" in extra["error"]["message"]


async def test_file_problems_are_reported_inside_the_result(server, peers):
    admin = await actors.admin(server, peers, namespaces=(FC,))
    files = server.data_dir / "files"
    (files / "bad.json").write_text("{nope")
    (files / "folder").mkdir()
    cases = {
        "missing.json": ("File not found: missing.json", "not_found"),
        "bad.json": ("Invalid JSON in bad.json", "bad_request"),
        "folder": ("Not a file: folder", "bad_request"),
        "a" * 300: ("File name too long", "bad_request"),
    }
    for path, (message, code) in cases.items():
        ack = await call(admin, "readJsonFromFile", path)
        assert ack["success"] is True and ack["status"] == "ok", path  # the call itself worked
        assert ack["result"]["success"] is False
        assert (
            message in ack["result"]["error"]["message"] and ack["result"]["error"]["code"] == code
        )
    # saveJsonToFile reports a string, as the original does
    for args, message in [
        (("x.json", [1, 2]), "jsonData must be an object."),
        (("x.json",), "jsonData must be an object."),
        (("bad.json", {"a": 1}), "Existing file is not valid JSON: bad.json"),
        (("folder", {"a": 1}), "Not a file: folder"),
        (("a" * 300, {"a": 1}), "File name too long"),
    ]:
        ack = await call(admin, "saveJsonToFile", *args)
        assert ack["result"]["success"] is False and message in ack["result"]["error"], args
    assert (files / "bad.json").read_text() == "{nope"


async def test_unknown_function_and_bad_payloads(server, peers):
    admin = await actors.admin(server, peers, namespaces=(FC,))
    ack = await call(admin, "nope", rid="x1")
    assert ack == {
        "requestId": "x1",
        "success": False,
        "status": "error",
        "error": {"message": 'Function "nope" not found.', "code": "not_found"},
    }
    bad = await admin.call(FC, "FUNCTION_CALL", {"requestId": "x2", "args": []})
    assert bad["requestId"] == "x2" and bad["success"] is False
    assert bad["error"]["message"] == "Invalid FUNCTION_CALL payload: functionName: Field required."
    assert (await admin.call(FC, "FUNCTION_CALL", "x"))["error"]["message"].endswith(
        "expected an object."
    )
    empty = await admin.call(FC, "FUNCTION_CALL")
    assert empty["success"] is False and empty["requestId"] is None


# ---------------------------------------------------------------- third-party functions
async def test_decorated_function_with_an_args_model(server, peers):
    admin = await actors.admin(server, peers, namespaces=(FC,))
    ok = await call(admin, "testEcho", "ab", 3)
    assert ok["result"] == {"echo": "ababab", "caller": "admin"}
    assert (await call(admin, "testEcho", "ab", raw_args=True))["result"]["echo"] == "ab"
    for args, message in [
        ((), "Invalid arguments for testEcho: text: Field required."),
        (("ab", "x"), "Invalid arguments for testEcho: times: Input should be a valid integer"),
        (("x" * 30,), "Invalid arguments for testEcho: text: String should have at most 20"),
        (("a", 1, 2), "Invalid arguments for testEcho: takes at most 2 arguments (3 given)."),
    ]:
        ack = await call(admin, "testEcho", *args)
        assert ack["success"] is False and ack["error"]["code"] == "bad_request"
        assert ack["error"]["message"].startswith(message), ack


async def test_registered_functions_sensitive_sync_and_failing(server, peers):
    async def secret(ctx: Any) -> str:
        return "only admins"

    def plain(ctx: Any, a: int, b: int = 2) -> int:
        return a + b

    async def boom(ctx: Any) -> None:
        raise ValueError("it broke at /srv/private/db.sqlite")

    async def refuse(ctx: Any) -> None:
        raise forbidden("Not you.")

    registry = server.app.registry
    registry.register(ServerFunction("secret", secret, sensitive=True))
    registry.register(ServerFunction("plain", plain))
    registry.register(ServerFunction("boom", boom))
    registry.register(ServerFunction("refuse", refuse))
    admin = await actors.admin(server, peers, namespaces=(FC,))
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    assert (await call(admin, "secret"))["result"] == "only admins"
    assert (await call(web, "secret"))["error"] == {"message": "Unauthorized", "code": "forbidden"}
    assert (await call(web, "plain", 1))["result"] == 3
    assert (await call(web, "plain", 1, 5))["result"] == 6
    missing = await call(web, "plain")
    assert missing["error"]["message"].startswith("Invalid arguments for plain: missing a required")
    logged: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("newage").addHandler(catcher)
    try:
        failed = await call(web, "boom")
    finally:
        logging.getLogger("newage").removeHandler(catcher)
    # the caller learns which function failed, not the exception's text
    assert failed["error"] == {"message": "Server function boom failed.", "code": "internal"}
    # the operator gets the whole story in the log
    (record,) = [r for r in logged if r.getMessage() == "server function boom failed"]
    assert record.exc_info is not None and "/srv/private" in str(record.exc_info[1])
    assert (await call(web, "refuse"))["error"]["message"] == "Not you."


def make_plugin(root: Path) -> None:
    (root / "newage_test_plugin.py").write_text(
        "from pydantic import BaseModel\n"
        "from newage.domain.functions.service import ServerFunction, server_function\n\n"
        "class Args(BaseModel):\n"
        "    name: str\n\n"
        "@server_function('pluginGreet', args_model=Args)\n"
        "async def greet(ctx, args):\n"
        "    return 'hello ' + args.name\n\n"
        "async def _shout(ctx, text):\n"
        "    return text.upper()\n\n"
        "SHOUT = ServerFunction('pluginShout', _shout)\n"
        "TAKEN = ServerFunction('readJsonFromFile', _shout)\n"
        "NOT_A_FUNCTION = 42\n"
    )
    dist = root / "newage_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: newage-test-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[newage.functions]\n"
        "greet = newage_test_plugin:greet\n"
        "shout = newage_test_plugin:SHOUT\n"
        "broken = newage_test_plugin_missing:thing\n"
        "number = newage_test_plugin:NOT_A_FUNCTION\n"
        "taken = newage_test_plugin:TAKEN\n"
    )


async def test_entry_point_functions(server, peers, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    fresh = FunctionRegistry()
    assert load_entry_point_functions(fresh) == ["pluginGreet", "pluginShout", "readJsonFromFile"]
    registry = server.app.registry
    assert load_entry_point_functions(registry) == ["pluginGreet", "pluginShout"]
    assert load_entry_point_functions(registry) == []  # loading twice is harmless
    assert registry.functions["readJsonFromFile"] is not fresh.functions["readJsonFromFile"]
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    assert (await call(web, "pluginGreet", "ann"))["result"] == "hello ann"
    assert (await call(web, "pluginShout", "hi"))["result"] == "HI"
    bad = await call(web, "pluginGreet", 5)
    assert bad["error"]["message"] == (
        "Invalid arguments for pluginGreet: name: Input should be a valid string."
    )


# ---------------------------------------------------------------- permissions
async def test_file_functions_are_admin_only_and_local(server, peers):
    (server.data_dir / "files" / "a.json").write_text("{}")
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    ext = await actors.connect(
        server, peers, "SillyTavern-1", ClientKind.SILLYTAVERN, namespaces=(FC,)
    )
    remote = await actors.admin(server, peers, namespaces=(FC,), peer_options={"headers": REMOTE})
    loopback = "Only loopback connections may do this while networkSafe is on."
    for peer, message in [(web, "Unauthorized"), (ext, "Unauthorized"), (remote, loopback)]:
        for name, args in [
            ("readJsonFromFile", ("a.json",)),
            ("saveJsonToFile", ("a.json", {"x": 1})),
            ("addStaticResources", ({"/a": "a.json"},)),
        ]:
            ack = await call(peer, name, *args)
            assert ack["success"] is False and ack["status"] == "error", (name, ack)
            assert ack["error"] == {"message": message, "code": "forbidden"}, name
    assert (server.data_dir / "files" / "a.json").read_text() == "{}"
    # the legacy server-settings save: extensions and admins, not plain clients
    denied = await call(web, "saveJsonToFile", "./settings/server_settings.json", {"timeout": 1})
    assert denied["error"]["message"] == "Unauthorized"
    assert server.app.live.current.timeout == 5000
    # and reading the server's settings is theirs too: a plain client gets nothing
    read = await call(web, "readJsonFromFile", "./settings/server_settings.json")
    assert read["success"] is False and "result" not in read
    assert "serverPort" not in str(read)


async def test_settings_form_save_extension_fields_only(server, peers):
    ext = await actors.connect(
        server, peers, "SillyTavern-1", ClientKind.SILLYTAVERN, namespaces=(FC,)
    )
    admin = await actors.admin(server, peers, namespaces=(FC,))
    path = "./settings/server_settings.json"
    ack = await call(ext, "saveJsonToFile", path, {"reconnectDelay": 2000, "logLevel": "debug"})
    assert ack["result"] == {"success": True, "ignored": ["logLevel"]}
    assert server.app.live.current.reconnect_delay == 2000
    assert server.app.live.current.log_level == "info"
    bad = await call(ext, "saveJsonToFile", path, {"serverPort": "x"})
    assert bad["result"]["success"] is False and "serverPort" in bad["result"]["error"]
    ack = await call(admin, "saveJsonToFile", path, {"contextPageSize": 20})
    assert ack["result"] == {"success": True} and server.app.live.current.context_page_size == 20
    saved = json.loads((server.data_dir / "settings" / "server_settings.json").read_text())
    assert saved["contextPageSize"] == 20 and saved["reconnectDelay"] == 2000


async def test_bootstrap_socket_reads_only_the_two_legacy_paths(server, peers):
    await server.trust("SillyTavern-8000", ClientKind.SILLYTAVERN)
    await server.trust("other")
    boot = peers()
    await boot.open(FC, auth("SillyTavern-8000", clientType="SillyTavern"))
    own = await call(boot, "readJsonFromFile", "./settings/SillyTavern-8000-settings.json")
    assert own["result"]["result"]["clientId"] == "SillyTavern-8000"
    public = await call(boot, "readJsonFromFile", "settings/server_settings.json")
    assert set(public["result"]["result"]) == {
        "serverPort",
        "serverAddress",
        "networkSafe",
        "socketIOPath",
        "transport",
    }
    for name, args in [
        ("readJsonFromFile", ("a.json",)),
        ("saveJsonToFile", ("./settings/server_settings.json", {"timeout": 1})),
        ("addStaticResources", ({"/a": "a"},)),
        ("testEcho", ("x",)),
    ]:
        ack = await call(boot, name, *args)
        assert ack["error"] == {"message": "Key required.", "code": "unauthenticated"}, name
    other = await call(boot, "readJsonFromFile", "./settings/other-settings.json")
    assert other["error"]["message"] == "Access denied: File is restricted."
    forwarded = await call(boot, "x", target="SillyTavern-8000")
    assert forwarded["error"]["message"] == "Key required."


# ---------------------------------------------------------------- addStaticResources
def test_url_path_rules():
    assert check_url_path("/site/", "/socket.io") == "/site"
    assert check_url_path("/a/b.html", "/sio") == "/a/b.html"
    assert check_url_path("/socket.iox", "/socket.io") == "/socket.iox"
    for bad in [
        "site", "", None, 5, "/", "//", "/index.html", "/socket.io", "/socket.io/x",
        "/custom/x", "/lib", "/lib/a.js", "/dist/x", "/exampleClient", "/public/x",
        "/healthz", "/readyz/", "/metrics", "/a/../b", "/a/./b", "/a//b", "/.git",
        "/a/.env", "/a%2e", "/a?b", "/a#b", "/a\\b", "/a\x00", "/a\nb", "/" + "x" * 600,
    ]:  # fmt: skip
        with pytest.raises(Exception) as info:
            check_url_path(bad, "/custom" if bad == "/custom/x" else "/socket.io")
        assert getattr(info.value, "code", None) == "bad_request", bad


async def test_static_resources_are_served_replaced_and_persisted(server, peers):
    files = server.data_dir / "files"
    (files / "site" / "sub").mkdir(parents=True)
    (files / "site" / "index.html").write_text("<h1>site</h1>")
    (files / "site" / "sub" / "app.js").write_text("console.log(1)")
    (files / "one.txt").write_text("one")
    (files / "two.txt").write_text("two")
    admin = await actors.admin(server, peers, namespaces=(FC,))
    ack = await call(admin, "addStaticResources", {"/site": "site", "/one": "./one.txt"})
    assert ack["status"] == "ok" and ack["result"] == {
        "success": True,
        "results": [
            {"urlPath": "/site", "status": "success"},
            {"urlPath": "/one", "status": "success"},
        ],
    }
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/site/")).text == "<h1>site</h1>"
        assert (await http.get("/site/sub/app.js")).text == "console.log(1)"
        assert (await http.get("/one")).text == "one"
        assert (await http.get("/site/missing")).status_code == 404
    # the object wrapped (no array), several objects spread; re-registering replaces
    mixed = await call(
        admin,
        "addStaticResources",
        {"/one": "two.txt", "/bad": "nowhere", "/lib/x": "two.txt", "/esc": "../newage.db"},
        raw_args=True,
    )
    assert mixed["result"]["success"] is False
    assert mixed["result"]["results"] == [
        {"urlPath": "/one", "status": "success"},
        {"urlPath": "/bad", "status": "error", "message": "Not found in the files area: nowhere"},
        {
            "urlPath": "/lib/x",
            "status": "error",
            "message": "urlPath /lib/x is reserved by the server.",
        },
        {
            "urlPath": "/esc",
            "status": "error",
            "message": "Access denied: Path is outside the files area.",
        },
    ]
    two = await call(admin, "addStaticResources", {"/two": "two.txt"}, {"/site2": "site"})
    assert two["result"]["success"] is True and len(two["result"]["results"]) == 2
    empty = await call(admin, "addStaticResources", {})
    assert empty["result"] == {"success": True, "results": []}
    for args in [(), ("x",), ([["/a", "b"]],)]:
        bad = await call(admin, "addStaticResources", *args)
        assert bad["success"] is False and bad["error"]["message"].startswith(
            "Invalid arguments for addStaticResources: resources must be an object"
        ), args
    await server.restart()
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/one")).text == "two"
        assert (await http.get("/two")).text == "two"
        assert (await http.get("/site/sub/app.js")).text == "console.log(1)"
        assert (await http.get("/site2/")).text == "<h1>site</h1>"


# ---------------------------------------------------------------- fifty path tricks
def tricks(data: Path, outside: Path) -> tuple[list[Any], list[str]]:
    """(paths that must fail, paths that stay inside the files area)."""
    escaping: list[Any] = [
        "../secret.json",
        "../../outside/secret.json",
        "../settings/server_settings.json",
        "../settings/other-settings.json",
        "../newage.db",
        "../logs/combined.log",
        "./../secret.json",
        "a/../../secret.json",
        "a/b/../../../secret.json",
        "a/./../../secret.json",
        "files/../../secret.json",
        "../files/../secret.json",
        "..\\secret.json",
        "a\\..\\..\\secret.json",
        "..\\..\\outside\\secret.json",
        "../secret.json.",
        "../secret.json ",
        "..;/secret.json",
        "..%2fsecret.json",
        "..\u2215secret.json",
        "/etc/passwd",
        "//etc/passwd",
        "\\\\server\\share\\secret.json",
        str(data / "secret.json"),
        str(data / "settings" / "server_settings.json"),
        str(data / "files" / "inside.json"),  # absolute paths are refused even inside
        str(outside / "secret.json"),
        "escape/secret.json",  # symlink to the data directory
        "escape/settings/server_settings.json",
        "escape/newage.db",
        "escape/logs/combined.log",
        "link.json",  # symlink to the settings file
        "outside-link.json",  # symlink to a file outside the data directory
        "dirlink/new.json",  # symlink to a folder outside
        "dirlink/secret.json",
        "loop/x.json",  # a symlink loop
        "settings/other-settings.json",
        "./settings/other-settings.json",
        "settings/../settings/other-settings.json",
        "settings//other-settings.json",
        "settings/server_settings.json/../other-settings.json",
        "keys/admin.json",
        "keys/../settings/other-settings.json",
        "settings",
        "keys",
        ".settings/x.json",
        "...",
        "~root/.ssh/id_rsa",
        "secret.json\x00.png",
        "\x00",
        "",
        ".",
        "./",
        "/",
        "x" * 5000,
        "a" * 300,
        123,
        None,
        ["../secret.json"],
        {"path": "../secret.json"},
    ]
    inside = [
        "%2e%2e/secret.json",
        "%2e%2e%2fsecret.json",
        "\uff0e\uff0e/secret.json",
        "\u2025/secret.json",
        "SETTINGS/other-settings.json",
        "settings./x.json",
        "~/secret.json",
        "file:///etc/passwd",
        "C:\\Windows\\win.ini",
        "logs/combined.log",
    ]
    return escaping, inside


def snapshot(root: Path, skip: set[Path]) -> dict[str, tuple[bytes, int]]:
    seen = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip) or path.is_symlink():
            continue
        if path.is_file():
            seen[str(path.relative_to(root))] = (path.read_bytes(), path.stat().st_mtime_ns)
    return seen


async def test_fifty_path_tricks_reach_nothing_outside_the_files_area(server, peers, tmp_path):
    data = server.data_dir
    files = data / "files"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"s": "SENTINEL-OUTSIDE"}')
    (data / "secret.json").write_text('{"s": "SENTINEL-ROOT"}')
    (data / "logs" / "combined.log").write_text("SENTINEL-LOG\n")
    server.write_settings({"sentinelKey": "SENTINEL-SETTINGS"})
    await server.trust("other")
    other = data / "settings" / "other-settings.json"
    other.write_text(json.dumps({**json.loads(other.read_text()), "note": "SENTINEL-TRUST"}))
    (files / "escape").symlink_to(data)
    (files / "link.json").symlink_to(data / "settings" / "server_settings.json")
    (files / "outside-link.json").symlink_to(outside / "secret.json")
    (files / "dirlink").symlink_to(outside)
    (files / "loop").symlink_to(files / "loop")
    admin = await actors.admin(server, peers, namespaces=(FC,))
    db_files = {data / name for name in ("newage.db", "newage.db-wal", "newage.db-shm")}
    before = snapshot(tmp_path, {files, *db_files})
    escaping, inside = tricks(data, outside)
    assert len(escaping) >= 50

    async def attempt(i: int, path: Any) -> tuple[Any, ...]:
        read = await call(admin, "readJsonFromFile", path, timeout=20)
        save = await call(admin, "saveJsonToFile", path, {"isTrust": True, "pwned": 1}, timeout=20)
        static = await call(admin, "addStaticResources", {f"/t{i}": path}, timeout=20)
        return path, read, save, static

    # pipelined: the server still handles them one by one, in arrival order
    answers = await asyncio.gather(*(attempt(i, p) for i, p in enumerate(escaping + inside)))
    for path, read, save, static in answers:
        text = json.dumps([read, save, static])
        assert "SENTINEL" not in text and '"internal"' not in text, path
        assert str(data) not in text, path  # no absolute paths in messages
        assert failure(read) is not None, path  # nothing readable is planted inside
        static_errors = [r.get("message") for r in static.get("result", {}).get("results", [])]
        if path in escaping:
            for ack in (read, save):
                message = failure(ack)
                assert isinstance(message, str) and len(message) > 10, (path, ack)
            assert static["success"] is False or static_errors[0], path
    assert snapshot(tmp_path, {files, *db_files}) == before
    assert sorted(p.name for p in outside.iterdir()) == ["secret.json"]
    # what was written stayed below the area, and no mapping leaves it
    for written in files.rglob("*"):
        if not written.is_symlink():
            assert written.resolve().is_relative_to(files.resolve())
    for mapping in await server.app.store.list_static_mappings():
        assert (files / mapping.target).resolve().is_relative_to(files.resolve())
    async with httpx.AsyncClient(base_url=server.url) as http:
        pages = await asyncio.gather(*(http.get(f"/t{i}") for i in range(len(answers))))
    assert not [page.text for page in pages if "SENTINEL" in page.text]


# ---------------------------------------------------------------- forwarding to clients
async def fc_answerer(server, peers, answer: Any, client_id="SillyTavern-1", identity=None) -> Peer:
    """A Peer on /function_call that answers forwarded calls like the extension:
    ``answer`` is the ack value, or a (coroutine) function of the call."""
    peer = await actors.connect(
        server, peers, client_id, ClientKind.SILLYTAVERN, namespaces=(FC,), identity=identity
    )
    peer.calls = []  # type: ignore[attr-defined]

    async def handler(data: Any) -> Any:
        peer.calls.append(data)  # type: ignore[attr-defined]
        result = answer(data) if callable(answer) else answer
        return await result if inspect.isawaitable(result) else result

    peer.sio.on("FUNCTION_CALL", handler, namespace=FC)
    return peer


def hello(data: dict[str, Any]) -> dict[str, Any]:
    return {"requestId": data["requestId"], "success": True, "result": {"result": "Hello"}}


async def sleepy_answerer(server, peers) -> asyncio.Event:
    """An answerer that says hello only once the returned event is set."""
    release = asyncio.Event()

    async def sleepy(data):
        await release.wait()
        return hello(data)

    await fc_answerer(server, peers, sleepy)
    return release


async def test_forward_relays_the_answer(server, peers):
    ext = await fc_answerer(server, peers, hello)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    payload = {
        "requestId": "f1",
        "functionName": "myFunction1",
        "args": ["a", 2],
        "target": "SillyTavern-1",
        "extra": {"k": 1},
        # claims of the caller: relayed, but the receiver learns who really asks
        "clientId": "admin",
        "caller": {"clientId": "admin", "identity": "admin", "kind": "monitor"},
    }
    ack = await web.call(FC, "FUNCTION_CALL", payload)
    assert ack == {
        "requestId": "f1",
        "success": True,
        "result": {"result": "Hello"},
        "status": "ok",
    }
    caller = {"clientId": "web", "identity": "web", "kind": "client"}
    assert ext.calls == [{**payload, "caller": caller}]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("plain", {"requestId": "r1", "success": True, "status": "ok", "result": "plain"}),
        ({"v": 1}, {"requestId": "r1", "success": True, "status": "ok", "result": {"v": 1}}),
        (
            {"requestId": "r1", "success": False, "error": {"message": "nope"}},
            {"requestId": "r1", "success": False, "error": {"message": "nope"}, "status": "error"},
        ),
    ],
)
async def test_forward_answer_shapes(server, peers, answer, expected):
    await fc_answerer(server, peers, answer)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    assert await call(web, "f", target="SillyTavern-1") == expected


async def test_forward_goes_to_every_socket_and_the_first_answer_wins(server, peers):
    gates = {"r1": asyncio.Event(), "r2": asyncio.Event()}

    async def slow(data):
        await gates[data["requestId"]].wait()
        return {"requestId": data["requestId"], "success": True, "result": "slow"}

    async def fast(data):
        return {"requestId": data["requestId"], "success": True, "result": "fast"}

    async def silent(data):
        return None  # an ack without an answer

    tabs = [await fc_answerer(server, peers, a) for a in (slow, silent, fast)]
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    ack = await call(web, "f", target="SillyTavern-1")
    assert ack["result"] == "fast"
    # every tab was asked (each on its own connection, so not before the ack)
    await eventually(lambda: [len(tab.calls) for tab in tabs] == [1, 1, 1])
    gates["r1"].set()  # the slow tab's late answer is dropped...
    again = await call(web, "f", target="SillyTavern-1", rid="r2")
    # ...not taken for the next call's (the slow tab still waits on that one)
    assert again["requestId"] == "r2" and again["result"] == "fast"
    await eventually(lambda: [len(tab.calls) for tab in tabs] == [2, 2, 2])
    gates["r2"].set()


async def test_forward_without_any_answer(server, peers):
    for _ in range(2):
        await fc_answerer(server, peers, None)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    ack = await call(web, "f", target="SillyTavern-1")
    assert ack["success"] is False and ack["status"] == "error"
    assert ack["error"] == {
        "message": 'Target "SillyTavern-1" did not answer the call.',
        "code": "unavailable",
    }


async def test_forward_to_unknown_or_key_less_targets(server, peers):
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    ack = await call(web, "f", target="ghost", rid="g")
    assert ack == {
        "requestId": "g",
        "success": False,
        "status": "error",
        "error": {"message": 'Target "ghost" is not connected.', "code": "unavailable"},
    }
    await server.trust("SillyTavern-8000", ClientKind.SILLYTAVERN)
    boot = peers()
    await boot.open(FC, auth("SillyTavern-8000", clientType="SillyTavern"))  # no key
    ack = await call(web, "f", target="SillyTavern-8000")
    assert ack["error"]["message"] == 'Target "SillyTavern-8000" is not connected.'


async def test_forward_falls_back_to_the_client_id(server, peers):
    await fc_answerer(server, peers, hello, "SillyTavern-1", identity="SillyTavern-1#tab")
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    assert (await call(web, "f", target="SillyTavern-1"))["result"] == {"result": "Hello"}
    assert (await call(web, "f", target="SillyTavern-1#tab"))["success"] is True


@pytest.mark.parametrize("server_settings", [dict(functionCallTimeout=300)])
async def test_forward_timeout_and_late_answer(server, peers):
    release = asyncio.Event()
    answered: list[str] = []

    async def late(data):
        if data["requestId"] == "r1":
            await release.wait()
        answered.append(data["requestId"])
        return {**hello(data), "result": {"result": f"Hello {data['requestId']}"}}

    ext = await fc_answerer(server, peers, late)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    started = time.monotonic()
    ack = await call(web, "f", target="SillyTavern-1")
    elapsed = time.monotonic() - started
    assert ack["error"] == {
        "message": 'Function call to "SillyTavern-1" timed out.',
        "code": "timeout",
    }
    assert elapsed > 0.25  # not before the timeout
    # the late answer to r1 reaches the server (a round trip of the answerer
    # after it) and is dropped: the caller hears nothing more about r1...
    release.set()
    await eventually(lambda: answered == ["r1"])
    await settle(ext, FC)
    await settle(web, FC)
    assert web.received(FC, "FUNCTION_CALL") == [] and web.received(FC, "ERROR") == []
    # ...and it is not taken for the next call's answer
    again = await call(web, "f", target="SillyTavern-1", rid="r2")
    assert again == {
        "requestId": "r2",
        "success": True,
        "status": "ok",
        "result": {"result": "Hello r2"},
    }
    assert server.app.functions._waiting == {}


async def test_forward_fails_at_once_when_the_target_disconnects(server, peers):
    async def leave(data):
        asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(ext.close()))
        await asyncio.sleep(5)

    ext = await fc_answerer(server, peers, leave)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    started = time.monotonic()
    ack = await call(web, "f", target="SillyTavern-1", timeout=10)
    assert time.monotonic() - started < 3  # not the 30 s timeout
    assert ack["error"] == {
        "message": 'Target "SillyTavern-1" disconnected during the call.',
        "code": "unavailable",
    }
    assert server.app.functions._waiting == {}


async def test_one_tab_leaving_does_not_fail_the_call(server, peers):
    async def leave(data):
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(first.close()))
        await asyncio.sleep(5)

    async def later(data):
        await asyncio.sleep(0.4)
        return hello(data)

    first = await fc_answerer(server, peers, leave)
    await fc_answerer(server, peers, later)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    ack = await call(web, "f", target="SillyTavern-1")
    assert ack["success"] is True and ack["result"] == {"result": "Hello"}


async def test_a_waiting_forward_does_not_hold_up_the_callers_other_events(server, peers):
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(data):
        arrived.set()
        await release.wait()
        return hello(data)

    await fc_answerer(server, peers, slow)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    forwarded = asyncio.ensure_future(call(web, "f", target="SillyTavern-1", rid="slow"))
    await asyncio.wait_for(arrived.wait(), 5)  # the forward is waiting on the tab
    quick = await call(web, "nope", rid="quick")
    assert quick["requestId"] == "quick" and quick["error"]["code"] == "not_found"
    assert not forwarded.done()
    release.set()
    assert (await forwarded)["requestId"] == "slow"


@pytest.mark.parametrize(
    "server_settings", [dict(functionCallTimeout=500, maxPendingFunctionCalls=2)]
)
async def test_forwarded_calls_are_capped_per_caller_and_freed_on_timeout(server, peers):
    release = await sleepy_answerer(server, peers)
    web = await actors.connect(server, peers, "web", namespaces=(FC,))
    other = await actors.connect(server, peers, "other", namespaces=(FC,))
    waiting = [
        asyncio.ensure_future(call(web, "f", target="SillyTavern-1", rid=f"w{i}")) for i in range(2)
    ]
    await eventually(lambda: server.app.outbox.pending_callbacks() == 2)
    refused = await call(web, "f", target="SillyTavern-1", rid="w2")
    assert refused["error"] == {
        "message": "Too many function calls waiting (2); wait for an answer.",
        "code": "queue_full",
    }
    # the cap is the caller's: another client still gets through
    extra = asyncio.ensure_future(call(other, "f", target="SillyTavern-1", rid="o1"))
    for ack in await asyncio.gather(*waiting, extra):
        assert ack["error"]["code"] == "timeout", ack
    # the target never answered and is still connected: nothing is kept
    assert server.app.outbox.pending_callbacks() == 0
    release.set()  # and the caller's allowance is back
    assert (await call(web, "f", target="SillyTavern-1", rid="w3"))["success"] is True
