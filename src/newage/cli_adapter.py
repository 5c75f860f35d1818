"""``newage adapter ...``: serve requests from a model backend, as an extension.

The SDK and ``openai`` are imported only when the command runs, so the rest
of the command line works without ``newage[adapter]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Annotated

import typer

adapter_cli = typer.Typer(
    help="Serve requests from a model backend, as an extension.", no_args_is_help=True
)


def _env(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        typer.echo(f"error: {what}: environment variable {name} is not set", err=True)
        raise typer.Exit(2)
    return value


@adapter_cli.command("openai")
def openai_command(
    base_url: Annotated[str, typer.Option(help="The backend's /v1 URL.")],
    model: Annotated[str, typer.Option(help="The backend's model name.")],
    client_id: Annotated[str, typer.Option(help="The extension's clientId (SillyTavern trust).")],
    server: Annotated[str, typer.Option(help="The newage server.")] = "http://127.0.0.1:4000",
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the backend's API key.")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="The clientId's password, for getKey.")
    ] = None,
    key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding a newage key (no getKey).")
    ] = None,
    stream: Annotated[bool, typer.Option(help="Stream the backend's answers.")] = True,
) -> None:
    """Answer requests from an OpenAI-compatible backend (LM Studio, llama.cpp, vLLM, Ollama)."""
    try:
        from newage.sdk import NewAgeError
        from newage.sdk.adapter import OpenAIBackend, openai_adapter
    except ImportError as exc:
        typer.echo(f"error: {exc.name} is missing; install newage[adapter]", err=True)
        raise typer.Exit(1) from None
    if password is not None and key_env is not None:
        typer.echo("error: give --password or --key-env, not both", err=True)
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    backend = OpenAIBackend(base_url, model, _env(api_key_env, "--api-key-env"), stream)
    adapter = openai_adapter(
        server, client_id, backend, password=password, key=_env(key_env, "--key-env")
    )

    async def run() -> None:
        await adapter.start()
        # stdout: a line a supervisor (or a test) can wait for
        print(f"serving {model} as {client_id} on {server}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await adapter.close()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    except NewAgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
