"""The ``newage`` command line (README, "Command line").

Trust and key commands open the data directory's store directly, so they
work whether or not a server is running on it; a running server sees the
change on its next connect (and drops sockets whose key or trust is gone
within a second). ``keys create`` prints the key as the only stdout line.

Exit codes: 0 success, 1 failure (e.g. nothing to revoke), 2 usage,
3 invalid settings or trust files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from newage import __version__, stextension
from newage.cli_adapter import adapter_cli
from newage.datadir import DataDir
from newage.datainit import prepare_data_dir
from newage.domain.identity.trust import KeyService, TrustService
from newage.domain.ports.store import Store
from newage.errors import NewAgeError
from newage.protocol.acks import KeyMeta
from newage.protocol.names import ClientKind
from newage.settings import Settings, SettingsError
from newage.store.factory import describe_store, make_store
from newage.store.trustfiles import TrustDirectory

EXIT_FAILURE = 1
EXIT_CONFIG = 3

cli = typer.Typer(
    name="newage",
    help="Server for the SillyTavern-NewAge real-time protocol.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
trust_cli = typer.Typer(help="Manage trusted clients.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage client keys.", no_args_is_help=True)
extension_cli = typer.Typer(help="Our SillyTavern extension.", no_args_is_help=True)
cli.add_typer(trust_cli, name="trust")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(extension_cli, name="extension")
cli.add_typer(adapter_cli, name="adapter")

DataDirOpt = Annotated[
    Path,
    typer.Option("--data-dir", "-d", envvar="NEWAGE_DATA_DIR", help="Data directory."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Settings file (default <data>/settings/server_settings.json)."
    ),
]
T = TypeVar("T")


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"newage {__version__}")
        raise typer.Exit()


@cli.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """newage command line."""


def prepare(
    data_dir: Path, config: Path | None, overrides: dict[str, Any] | None = None
) -> tuple[DataDir, Settings]:
    """Create/validate the data directory; exit 3 with one line on bad settings."""
    try:
        return prepare_data_dir(data_dir, config, overrides)
    except SettingsError as exc:
        _err(exc.line)
        raise typer.Exit(EXIT_CONFIG) from None


def _run_store(data: DataDir, settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def runner() -> T:
        store = make_store(settings, data.db_path)
        await store.open()
        try:
            await TrustService(
                store, TrustDirectory(data.settings_dir), settings.bcrypt_cost
            ).import_files()
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(runner())
    except NewAgeError as exc:
        _err(f"error: {exc.message}")
        raise typer.Exit(EXIT_FAILURE) from None


# ---------------------------------------------------------------------- server
@cli.command()
def serve(
    data_dir: DataDirOpt = Path("data"),
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 4000).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the server."""
    import uvicorn

    from newage.app import App
    from newage.graceful import GracefulServer
    from newage.logs import lean_records, setup_logging
    from newage.serving import raise_fd_limit, tune_gc, uvicorn_options

    data, settings = prepare(data_dir, config, {"host": host, "server_port": port})
    lean_records()
    setup_logging(
        data.logs_dir,
        settings.log_level,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
    )
    if settings.debug_mode:
        from newage.logs import set_level

        set_level("debug")
    app = App(data, settings, config)
    raise_fd_limit()
    tune_gc()
    if settings.asgi_server == "granian":
        import uvloop

        from newage.serving import GranianServer

        try:
            granian = GranianServer(app.asgi, settings, settings.host, settings.server_port)
        except NewAgeError as exc:
            _err(f"error: {exc.message}")
            raise typer.Exit(3) from None
        uvloop.run(granian.run(app.closing))
        return
    config_ = uvicorn.Config(
        app.asgi,
        host=settings.host,
        port=settings.server_port,
        loop="uvloop",
        timeout_graceful_shutdown=5,
        **uvicorn_options(settings),
    )
    server = GracefulServer(config_, app.closing)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run does when start-up fails


@cli.command()
def init(data_dir: DataDirOpt = Path("data")) -> None:
    """Write a default data directory (existing files are kept)."""
    data, settings = prepare(data_dir, None)
    _run_store(data, settings, _noop)
    typer.echo(f"data directory ready: {data.root}")


async def _noop(store: Store) -> None:
    return None


@cli.command("check-config")
def check_config(data_dir: DataDirOpt = Path("data"), config: ConfigOpt = None) -> None:
    """Validate the settings and trust files; print one line."""
    data, settings = prepare(data_dir, config)
    if settings.database_url:
        # a shared database is worth checking: reachable, and a schema we know
        try:
            asyncio.run(_open_and_close(make_store(settings, data.db_path)))
        except Exception as exc:
            _err(f"{describe_store(settings, data.db_path)}: {exc}")
            raise typer.Exit(EXIT_CONFIG) from None
    typer.echo(
        f"ok: {config or data.server_settings} (port {settings.server_port}, "
        f"networkSafe {settings.network_safe}, store {describe_store(settings, data.db_path)})"
    )


async def _open_and_close(store: Store) -> None:
    await store.open()
    await store.close()


# ---------------------------------------------------------------------- trust
@trust_cli.command("add")
def trust_add(
    client_id: Annotated[str, typer.Argument(help="The clientId to trust.")],
    type_: Annotated[
        ClientKind, typer.Option("--type", help="What the client may be.")
    ] = ClientKind.CLIENT,
    password: Annotated[str | None, typer.Option(help="SillyTavern login password.")] = None,
    remember_me: Annotated[bool | None, typer.Option("--remember-me/--no-remember-me")] = None,
    data_dir: DataDirOpt = Path("data"),
) -> None:
    """Trust a client (or change how it is trusted)."""
    data, settings = prepare(data_dir, None)

    async def work(store: Store) -> None:
        service = TrustService(store, TrustDirectory(data.settings_dir), settings.bcrypt_cost)
        entry = await service.add(client_id, type_, password, remember_me)
        typer.echo(f"trusted {entry.client_id} as {entry.kind.value}")

    _run_store(data, settings, work)


@trust_cli.command("remove")
def trust_remove(client_id: str, data_dir: DataDirOpt = Path("data")) -> None:
    """Withdraw trust; the client's live sockets are closed by a running server."""
    data, settings = prepare(data_dir, None)

    async def work(store: Store) -> bool:
        return await TrustService(
            store, TrustDirectory(data.settings_dir), settings.bcrypt_cost
        ).remove(client_id)

    if not _run_store(data, settings, work):
        _err(f"{client_id} is not trusted")
        raise typer.Exit(EXIT_FAILURE)
    typer.echo(f"no longer trusted: {client_id}")


@trust_cli.command("list")
def trust_list(
    data_dir: DataDirOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """List trust entries."""
    data, settings = prepare(data_dir, None)

    async def work(store: Store) -> list[dict[str, Any]]:
        return [e.public() for e in await store.list_trust()]

    entries = _run_store(data, settings, work)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    for e in entries:
        flags = [e["clientType"], "trusted" if e["isTrust"] else "untrusted"]
        if e["hasPassword"]:
            flags.append("password")
        typer.echo(f"{e['clientId']}\t{' '.join(flags)}")


# ---------------------------------------------------------------------- keys
@keys_cli.command("create")
def keys_create(client_id: str, data_dir: DataDirOpt = Path("data")) -> None:
    """Generate (or rotate) a key; prints only the key on stdout."""
    data, settings = prepare(data_dir, None)

    async def work(store: Store) -> str:
        entry = await store.get_trust(client_id)
        if entry is None or not entry.trusted:
            _err(f"warning: {client_id} is not trusted; the key is useless until it is")
        key, _ = await KeyService(store, settings.bcrypt_cost).create(client_id)
        return key

    key = _run_store(data, settings, work)
    sys.stdout.write(key + "\n")
    sys.stdout.flush()


@keys_cli.command("revoke")
def keys_revoke(client_id: str, data_dir: DataDirOpt = Path("data")) -> None:
    """Revoke a key; a running server closes the client's sockets."""
    data, settings = prepare(data_dir, None)

    async def work(store: Store) -> bool:
        return await KeyService(store, settings.bcrypt_cost).revoke(client_id)

    if not _run_store(data, settings, work):
        _err(f"no key for {client_id}")
        raise typer.Exit(EXIT_FAILURE)
    typer.echo(f"revoked the key of {client_id}")


@keys_cli.command("list")
def keys_list(
    data_dir: DataDirOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """List key metadata (never keys or hashes)."""
    data, settings = prepare(data_dir, None)

    async def work(store: Store) -> list[KeyMeta]:
        return [r.public() for r in await store.list_keys()]

    records = _run_store(data, settings, work)
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    for r in records:
        used = r["lastUsedAt"] or "-"
        typer.echo(f"{r['clientId']}\t{r['fingerprint']}\tcreated {r['createdAt']}\tused {used}")


# ---------------------------------------------------------------------- extension
@extension_cli.command("install")
def extension_install(
    sillytavern_dir: Annotated[
        Path, typer.Option("--sillytavern-dir", help="The SillyTavern folder (with server.js).")
    ],
    user: Annotated[str, typer.Option("--user", help="SillyTavern user.")] = "default-user",
) -> None:
    """Copy the extension to DIR/data/<user>/extensions/newage/ (reload SillyTavern after)."""
    try:
        target = stextension.install(sillytavern_dir, user)
    except NewAgeError as exc:
        _err(exc.message)
        raise typer.Exit(EXIT_FAILURE) from None
    typer.echo(f"installed the newage extension in {target}")


def main() -> None:
    cli()
