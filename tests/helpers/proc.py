"""Running the real ``newage`` console script as a separate process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

NEWAGE = str(Path(sys.executable).parent / "newage")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [NEWAGE, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


async def arun_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI from async tests, without blocking the loop serving a test server."""
    return await asyncio.to_thread(run_cli, *args, env=env)


class ServerProcess:
    """``newage serve`` on a free port. Its output is captured (``stop()``
    returns it) unless ``stdout`` says otherwise: a busy server writing into
    a pipe nobody reads would block, so the benchmark passes DEVNULL."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        stdout: int | IO[str] | None = subprocess.PIPE,
        program: list[str] | None = None,
    ) -> None:
        """``program``: what runs ``serve`` instead of the ``newage`` script
        (bench/idle_memory.py: the same CLI under tracemalloc)."""
        self.data_dir = data_dir
        self.program = program or [NEWAGE]
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.stdout = stdout
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> ServerProcess:
        serve = ["serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*self.program, *serve, *extra],
            env=self.env,
            stdout=self.stdout,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited: {self.proc.stdout.read() if self.proc.stdout else ''}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not come up")

    def stop(self, timeout: float = 15) -> str:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the output, if captured."""
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.proc = None
        return out or ""
