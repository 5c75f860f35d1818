"""Shared benchmark plumbing: servers in their own processes (newage and the
Node reference relay), the Node load generator, CPU accounting, medians.

newage is started with the test-suite's helpers (tests/helpers/proc.py), so
``bench`` runs as ``python -m bench.run`` from the repository root.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tests.helpers.proc import ServerProcess, free_port, run_cli
from tests.helpers.server import write_settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REFERENCE = ROOT / "bench" / "reference"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its threads) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cli(data: Path, *args: str) -> str:
    """``newage ARGS --data-dir DATA``: its stdout; raises when it fails."""
    out = run_cli(*args, "--data-dir", str(data))
    if out.returncode:
        raise RuntimeError(f"newage {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out.stdout.strip()


@contextmanager
def newage_server(
    settings: dict[str, Any] | None = None,
    *,
    template: Path | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[tuple[str, int, Path]]:
    """Yield (url, pid, data dir) of a fresh ``newage serve`` process.

    ``template``: a data directory to copy (trust and keys made once) instead
    of ``newage init``; ``settings`` are merged into its settings file;
    ``prepare(data)`` runs before the server starts.
    """
    data = Path(tempfile.mkdtemp(prefix="newage-bench-"))
    if template is not None:
        shutil.copytree(template, data, dirs_exist_ok=True)
    else:
        cli(data, "init")
    if settings:
        write_settings(data, settings)
    if prepare is not None:
        prepare(data)
    # a busy server must not block on a pipe nobody reads
    server = ServerProcess(data, stdout=subprocess.DEVNULL)
    try:
        server.start()
        assert server.proc is not None
        yield server.url, server.proc.pid, data
    finally:
        # a server still working off a backlog may not stop in time
        server.stop(timeout=5)
        shutil.rmtree(data, ignore_errors=True)


def ensure_node_modules() -> None:
    """``npm ci`` in bench/reference when node_modules is missing or older than
    package.json / package-lock.json (both ``make bench`` and a bare
    ``python -m bench.run`` get here)."""
    stamp = REFERENCE / "node_modules" / ".stamp"
    inputs = [REFERENCE / "package.json", REFERENCE / "package-lock.json"]
    if stamp.exists() and all(stamp.stat().st_mtime >= p.stat().st_mtime for p in inputs):
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
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
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


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, recursively: the median of the numbers (missing and ``None``
    values left out; ``None`` when there is none), any() of booleans; lists
    (``problems``) are joined."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in runs for k in r):
        values: list[Any] = [r[key] for r in runs if r.get(key) is not None]
        if not values:
            out[key] = None
        elif all(isinstance(v, bool) for v in values):
            out[key] = any(values)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            m = float(statistics.median(values))
            out[key] = int(m) if m.is_integer() and all(isinstance(v, int) for v in values) else m
        elif all(isinstance(v, dict) for v in values):
            out[key] = medians(values)
        elif all(isinstance(v, list) for v in values):
            out[key] = [x for v in values for x in v][:10]
        else:
            out[key] = values[0]
    return out


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
