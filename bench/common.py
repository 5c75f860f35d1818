"""Shared benchmark plumbing: servers in their own processes (newage and the
Node reference relay), the Node load generator, CPU and RSS accounting."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NEWAGE = str(Path(sys.executable).parent / "newage")
REFERENCE = ROOT / "bench" / "reference"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its threads) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_cli(data: Path, *args: str) -> str:
    out = subprocess.run(
        [NEWAGE, *args, "--data-dir", str(data)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@contextmanager
def newage_server(
    settings: dict[str, Any] | None = None,
    *,
    template: Path | None = None,
    prepare: Callable[[Path], None] | None = None,
    **env: str,
) -> Iterator[tuple[str, int, Path]]:
    """Yield (url, pid, data dir) of a fresh ``newage serve`` process.

    ``template``: a data directory to copy (trust and keys made once) instead
    of ``newage init``; ``prepare(data)`` runs before the server starts.
    """
    data = Path(tempfile.mkdtemp(prefix="newage-bench-"))
    port = free_port()
    if template is not None:
        shutil.copytree(template, data, dirs_exist_ok=True)
    else:
        run_cli(data, "init")
    if settings:
        path = data / "settings" / "server_settings.json"
        current = json.loads(path.read_text())
        current.update(settings)
        path.write_text(json.dumps(current))
    if prepare is not None:
        prepare(data)
    proc = subprocess.Popen(
        [NEWAGE, "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc)
        yield url, proc.pid, data
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)


def ensure_node_modules() -> None:
    """``npm ci`` in bench/reference once (``make bench`` does it too)."""
    stamp = REFERENCE / "node_modules" / ".stamp"
    lock = REFERENCE / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=REFERENCE, check=True)
    stamp.touch()


@contextmanager
def reference_server(key: str) -> Iterator[tuple[str, int]]:
    """Yield (url, pid) of the Node reference relay (bench/reference/server.mjs)."""
    port = free_port()
    proc = subprocess.Popen(
        ["node", str(REFERENCE / "server.mjs")],
        cwd=REFERENCE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PORT": str(port), "BENCH_KEY": key},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc)
        yield url, proc.pid
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any], grace: float = 5) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (a server still working
    off a backlog may not stop in time)."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def run_loadgen(config: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    """Run bench/reference/loadgen.mjs; its per-run results."""
    proc = subprocess.run(
        ["node", str(REFERENCE / "loadgen.mjs"), json.dumps({"clkTck": CLK_TCK, **config})],
        cwd=REFERENCE,
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    last: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "error": "no output"}
    if not last.get("ok"):
        raise RuntimeError(f"loadgen {config['scenario']}/{config['kind']}: {last.get('error')}")
    runs: list[dict[str, Any]] = last["runs"]
    return runs


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "node": shutil.which("node")
        and subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
    }


def save(name: str, result: dict[str, Any], directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    return path


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
