"""Run a Node script from tests/js (the official socket.io-client) against a server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parent.parent / "js"


async def run_node(script: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS_DIR / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS_DIR,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    lines = stdout.decode().strip().splitlines()
    if not lines:
        raise AssertionError(f"{script} printed nothing; stderr: {stderr.decode()}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["_exit"] = proc.returncode
    result["_stderr"] = stderr.decode()
    return result
