"""Run a Node script from tests/js (the official socket.io-client) against a server.

A script prints one JSON object per line; its last line is its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from types import TracebackType
from typing import Any

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def _last_line(script: str, stdout: bytes, stderr: bytes, code: int | None) -> dict[str, Any]:
    lines = stdout.decode().strip().splitlines()
    if not lines:
        raise AssertionError(f"{script} printed nothing; stderr: {stderr.decode()}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["_exit"] = code
    result["_stderr"] = stderr.decode()
    return result


class NodeScript:
    """A running script: read its lines as it goes, then its result."""

    def __init__(self, script: str, proc: asyncio.subprocess.Process) -> None:
        self.script = script
        self.proc = proc

    async def line(self, timeout: float = 20) -> dict[str, Any]:
        """The next line the script prints, parsed."""
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            stderr = await self.proc.stderr.read() if self.proc.stderr else b""
            raise AssertionError(f"{self.script} ended early; stderr: {stderr.decode()}")
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    async def send(self, line: str) -> None:
        """A line on the script's stdin (scripts that read commands)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def result(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for the script to end; its last line, with ``_exit`` and ``_stderr``."""
        stdout, stderr = await asyncio.wait_for(self.proc.communicate(), timeout)
        return _last_line(self.script, stdout, stderr, self.proc.returncode)

    async def __aenter__(self) -> NodeScript:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def start_node(script: str, *args: str) -> NodeScript:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS_DIR / script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS_DIR,
    )
    return NodeScript(script, proc)


async def run_node(script: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    async with await start_node(script, *args) as node:
        return await node.result(timeout)
