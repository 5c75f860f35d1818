"""The benchmark driver: every scenario against newage and, in the same run,
against the Node reference relay (bench/reference/server.mjs).

    python -m bench.run [--quick] [--only relay,fanout,...] [--runs N]
                        [--coalesce-ms N] [--no-reference] [--profile DIR]
                        [--set KEY=JSON ...] [--results DIR]
                        [--transport granian|uvicorn-wsproto|... ...] [--default-only]

Scenarios (docs/performance.md says what each measures and how):
relay, fanout, concurrency, idle, connect, history, capacity. Every scenario runs
newage's default configuration (``ours_c<default streamCoalesceMs>``, the
one the targets are judged on); the streaming scenarios also run
``streamCoalesceMs`` 0 and ``--coalesce-ms`` (default: the default);
``--transport`` adds the default configuration on another ASGI server. Each
(scenario, server) gets a fresh server; the load generator is
bench/reference/loadgen.mjs (Node, raw Engine.IO clients) for all but
``connect`` (raw Engine.IO clients in Python, bench/connect_rate.py).
Results: bench/results/<scenario>.json (medians and per-run numbers) and a
summary table on stdout. Run from the repository root (it imports
``tests.helpers``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.server import write_settings

from bench import connect_rate
from bench.common import (
    RESULTS,
    ROOT,
    cli,
    ensure_node_modules,
    medians,
    newage_server,
    reference_server,
    run_loadgen,
    save,
)
from bench.history import fill_history
from bench.report import (
    DEFAULT_COALESCE_MS,
    DEFAULT_CONFIG,
    STREAMING,
    fmt,
    history_ratios,
    ratios_to_reference,
    table,
    targets_for,
)
from newage.settings import ENV_PREFIX

SCENARIOS = ["relay", "fanout", "concurrency", "idle", "connect", "history", "capacity"]
# --transport NAME: the default configuration under another ASGI server
TRANSPORTS: dict[str, dict[str, Any]] = {
    "uvicorn": {"asgiServer": "uvicorn"},
    "uvicorn-websockets": {"asgiServer": "uvicorn", "uvicornWs": "websockets"},
    "uvicorn-wsproto": {"asgiServer": "uvicorn", "uvicornWs": "wsproto"},
    "newage": {"asgiServer": "uvicorn", "uvicornWs": "newage"},
    "uvicorn-websockets-sansio": {"asgiServer": "uvicorn", "uvicornWs": "websockets-sansio"},
    "granian": {"asgiServer": "granian"},
}
REF_KEY = "bench-reference-key"
CLIENT, EXTENSION, ADMIN = "bench-client", "SillyTavern-bench", "bench-admin"


# Settings of every newage server in the benchmark (the rest are defaults;
# --set adds to them). settings_for() is the whole of what a server gets.
BASE_SETTINGS: dict[str, Any] = {
    "bcryptCost": 4,
    "authFailureLimit": 1_000_000,
    # thousands of benchmark clients share one address
    "maxConnections": 1_000_000,
    "maxConnectionsPerAddress": 1_000_000,
    # hundreds of streams' identities and requests share one client id
    "maxRoomsPerClient": 100_000,
    "maxPendingRequestsPerClient": 100_000,
    "maxPendingRequestsPerExtension": 100_000,
    # the load generator's extensions do not answer PING_EXTENSION
    "heartbeatInterval": 0,
}
SCENARIO_SETTINGS: dict[str, dict[str, Any]] = {"history": {"contextSendDelay": 0}}

FULL: dict[str, dict[str, Any]] = {
    "relay": {"tokens": 20_000, "window": 100, "timeoutS": 600},
    "fanout": {"tokens": 2_000, "window": 100, "clients": 100, "room": "fan", "timeoutS": 600},
    "concurrency": {"streams": 200, "rate": 40, "seconds": 30, "drainS": 30},
    "idle": {"clients": 2_000, "warm": 50, "parallel": 50, "settleS": 3},
    "connect": {"seconds": 3, "concurrency": 16},
    # the concurrency scenario at each number of streams, one server for all
    "capacity": {
        "levels": [50, 100, 150, 200, 250, 300, 350, 400],
        "rate": 40,
        "seconds": 15,
        "drainS": 15,
    },
    "history": {
        "messages": 10_000,
        "room": "history",
        "requestRoom": "history-big",
        "contextRoom": "history-100",
        "contextRoomMessages": 100,
        "emptyRoom": "history-empty",  # prefix: history-empty-0, -1, ... one per request
        "member": "hist-client",
        "requests": 100,
        "warmup": 3,  # requests into each kind of room before the first run
        "pauseMs": 10,  # after each request's completion, inside its CPU window
        "contextRepeats": 3,
    },
}
QUICK: dict[str, dict[str, Any]] = {
    "relay": {"tokens": 3_000},
    "fanout": {"tokens": 300},
    "concurrency": {"seconds": 5, "drainS": 15},
    "idle": {"clients": 500, "settleS": 2},
    "connect": {"seconds": 1},
    "history": {"requests": 30, "contextRepeats": 2},
    "capacity": {"seconds": 5, "drainS": 10},
}

DESCRIPTIONS = {
    "relay": "One extension streams tokens (real wire protocol: START, 5 data sub-chunks, END "
    "per token) to a room with one client; closed loop with `window` tokens in flight.",
    "fanout": "The same stream to a room of `clients` clients.",
    "concurrency": "`streams` extensions each stream to their own client at `rate` tokens/s "
    "for `seconds` (open loop, staggered); added latency, loss, reordering.",
    "idle": "RSS per idle client (one Engine.IO connection with `/` and `/llm`).",
    "connect": "Authenticated namespace connects per second (raw Engine.IO clients).",
    "capacity": "The concurrency scenario at each of `levels` streams (`rate` tokens/s each, "
    "`seconds`): p99 added latency and server CPU per level; capacity = the most streams "
    "with p99 <= 50 ms and nothing lost.",
    "history": "GET_FULL_CONTEXT of a `messages`-message room (newage only), and LLM_REQUEST "
    "cost into a room of as many messages vs a 100-message room vs an empty one (a fresh "
    "empty room per request).",
}


@dataclass
class Target:
    name: str
    kind: str  # ours | reference
    settings: dict[str, Any] = field(default_factory=dict)  # newage: beyond the defaults


def newage_targets(
    scenario: str, coalesce_ms: int, transports: list[str], default_only: bool
) -> list[Target]:
    """The default configuration, and in the streaming scenarios also
    ``streamCoalesceMs`` 0 and ``coalesce_ms`` (by window), then the default
    configuration on each of ``transports``."""
    streaming = scenario in STREAMING and not default_only
    windows = sorted({0, coalesce_ms, DEFAULT_COALESCE_MS}) if streaming else []
    targets = [Target(f"ours_c{c}", "ours", {"streamCoalesceMs": c}) for c in windows]
    default = Target(DEFAULT_CONFIG, "ours")  # no override: the server's own default
    targets = [default if t.name == DEFAULT_CONFIG else t for t in targets] or [default]
    extra = [Target(f"{DEFAULT_CONFIG}_{name}", "ours", TRANSPORTS[name]) for name in transports]
    return targets + extra


def settings_for(target: Target, scenario: str) -> dict[str, Any]:
    """Every setting a newage server of ``target`` in ``scenario`` gets beyond
    the defaults (what serve() writes and the JSON records)."""
    return {**BASE_SETTINGS, **SCENARIO_SETTINGS.get(scenario, {}), **target.settings}


@dataclass
class Server:
    url: str
    pid: int
    creds: dict[str, dict[str, str]]


# ---------------------------------------------------------------------- servers
def make_template() -> tuple[Path, dict[str, dict[str, str]]]:
    """A data directory with the benchmark's trust entries and keys, made once.

    The keys are hashed with the ``bcryptCost`` of the settings file, so the
    base settings are written before they are made (serve() writes them again
    with the rest of settings_for()).
    """
    data = Path(tempfile.mkdtemp(prefix="newage-bench-template-"))
    cli(data, "init")
    write_settings(data, BASE_SETTINGS)
    creds: dict[str, dict[str, str]] = {}
    for role, client_id, kind in (
        ("client", CLIENT, "client"),
        ("ext", EXTENSION, "SillyTavern"),
        ("admin", ADMIN, "monitor"),
    ):
        cli(data, "trust", "add", client_id, "--type", kind)
        creds[role] = {"clientId": client_id, "key": cli(data, "keys", "create", client_id)}
    return data, creds


@contextlib.contextmanager
def serve(
    target: Target,
    scenario: str,
    template: tuple[Path, dict[str, dict[str, str]]],
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[Server]:
    if target.kind == "reference":
        creds = {
            role: {"clientId": cid, "key": REF_KEY}
            for role, cid in (("client", CLIENT), ("ext", EXTENSION), ("admin", ADMIN))
        }
        with reference_server(REF_KEY) as (url, pid):
            yield Server(url, pid, creds)
        return
    settings = settings_for(target, scenario)
    with newage_server(settings, template=template[0], prepare=prepare) as (url, pid, _):
        yield Server(url, pid, template[1])


@contextlib.contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy record of ``pid`` (raw collapsed stacks) while the block runs."""
    if out is None:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid)),
            *("-f", "raw", "-o", str(out), "-r", "200", "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


# ---------------------------------------------------------------------- scenarios
def run_scenario(
    scenario: str,
    targets: list[Target],
    params: dict[str, Any],
    runs: int,
    template: tuple[Path, dict[str, dict[str, str]]],
    profile_dir: Path | None,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        started = time.monotonic()
        print(f"== {scenario} / {target.name}", file=sys.stderr, flush=True)
        per_run: list[dict[str, Any]] = []
        if scenario == "idle":
            # a fresh server per run: RSS only ever grows
            for i in range(runs):
                with measured(target, scenario, template, profile_dir, f"-run{i}") as srv:
                    per_run += loadgen(scenario, target, srv, params, 1)
        else:
            prepare = history_prepare(params, runs) if scenario == "history" else None
            with measured(target, scenario, template, profile_dir, prepare=prepare) as srv:
                if scenario == "connect":
                    auth = {"clientId": CLIENT, "key": srv.creds["client"]["key"]}
                    kinds = ("full",) if target.kind == "reference" else ("namespace", "full")
                    per_run = connect_rate.measure_all(
                        srv.url,
                        srv.pid,
                        auth,
                        params["seconds"],
                        params["concurrency"],
                        runs,
                        kinds,
                    )
                elif scenario == "capacity":
                    per_run = capacity(target, srv, params, runs)
                else:
                    per_run = loadgen(scenario, target, srv, params, runs)
        med = medians(per_run)
        if scenario == "history":
            med.update(history_ratios(med))
        if scenario == "capacity":
            med["capacity_streams"] = capacity_at(med, params["levels"])
        results[target.name] = {"kind": target.kind, "median": med, "runs": per_run}
        took = time.monotonic() - started
        print(f"   {took:.0f} s: {json.dumps(med)}", file=sys.stderr)
    return results


@contextlib.contextmanager
def measured(
    target: Target,
    scenario: str,
    template: tuple[Path, dict[str, dict[str, str]]],
    profile_dir: Path | None,
    suffix: str = "",
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[Server]:
    """serve(), recorded with py-spy into ``profile_dir`` when it is newage."""
    with serve(target, scenario, template, prepare) as srv:
        out = None
        if profile_dir is not None and target.kind == "ours":
            out = profile_dir / f"{scenario}-{target.name}{suffix}.txt"
        with profiled(srv.pid, out):
            yield srv
        if out is not None:
            print(f"   profile: {out}", file=sys.stderr)


def loadgen(
    scenario: str, target: Target, srv: Server, params: dict[str, Any], runs: int
) -> list[dict[str, Any]]:
    config = {
        "scenario": scenario,
        "kind": target.kind,
        "url": srv.url,
        "pid": srv.pid,
        "runs": runs,
        "params": params,
        "creds": srv.creds,
    }
    return run_loadgen(config, timeout=3600)


def capacity(
    target: Target, srv: Server, params: dict[str, Any], runs: int
) -> list[dict[str, Any]]:
    """The concurrency scenario at each level, lowest first, on one server
    (every stream has ended before the next level); per run ``{"s<n>": ...}``."""
    per_run: list[dict[str, Any]] = [{} for _ in range(runs)]
    for n in params["levels"]:
        level = {k: v for k, v in params.items() if k != "levels"} | {"streams": n}
        print(f"   {n} streams", file=sys.stderr, flush=True)
        for i, result in enumerate(loadgen("concurrency", target, srv, level, runs)):
            per_run[i][f"s{n}"] = result
    return per_run


def capacity_at(med: dict[str, Any], levels: list[int], p99_ms: float = 50) -> int:
    """The most streams (of ``levels``) whose p99 added latency is within
    ``p99_ms`` with nothing lost, reordered or left undrained (0: none)."""
    best = 0
    for n in levels:
        level = med.get(f"s{n}") or {}
        bad = any(level.get(k) for k in ("lost", "reordered", "text_mismatch", "drain_timed_out"))
        p99 = level.get("latency_p99_ms")
        if p99 is not None and p99 <= p99_ms and not bad:
            best = n
    return best


def history_prepare(params: dict[str, Any], runs: int) -> Callable[[Path], None]:
    """The history scenario's rooms, with an empty room for every request
    into one (warm-up included) so that none is cleared while measuring."""
    empty = params["warmup"] + runs * params["requests"]

    def prepare(data: Path) -> None:
        rooms = {
            params["room"]: params["messages"],
            params["requestRoom"]: params["messages"],
            params["contextRoom"]: params["contextRoomMessages"],
            **{f"{params['emptyRoom']}-{i}": 0 for i in range(empty)},
        }
        fill_history(data, rooms=rooms, member=params["member"], extension=f"{EXTENSION}-0")

    return prepare


def git_commit() -> str | None:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, about 2 minutes")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--runs", type=int, help="runs per scenario and server (3; quick: 1)")
    parser.add_argument(
        "--coalesce-ms",
        type=int,
        default=DEFAULT_COALESCE_MS,
        help="a further streamCoalesceMs for the streaming scenarios, beside 0 and the "
        f"default ({DEFAULT_COALESCE_MS})",
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of newage into DIR")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference relay")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a newage setting for every newage server, e.g. streamFinalizeIdleMs=60000",
    )
    parser.add_argument(
        "--transport",
        action="append",
        default=[],
        choices=sorted(TRANSPORTS),
        help="also run the default configuration on this ASGI server (asgiServer, uvicornWs)",
    )
    parser.add_argument(
        "--default-only",
        action="store_true",
        help="skip the streamCoalesceMs 0 / --coalesce-ms configurations",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where the JSON files go (bench/results)"
    )
    args = parser.parse_args()
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item}: expected KEY=VALUE")
        if key == "streamCoalesceMs":
            parser.error(
                "--set streamCoalesceMs: the configurations are named after it; use --coalesce-ms"
            )
        try:
            BASE_SETTINGS[key] = json.loads(value)
        except json.JSONDecodeError:
            BASE_SETTINGS[key] = value
    overriding = sorted(k for k in os.environ if k.startswith(ENV_PREFIX))
    if overriding:
        parser.error(
            f"{', '.join(overriding)} would override the settings of every newage "
            "server (the environment wins over the settings file); unset them"
        )

    only = [s for s in args.only.split(",") if s] or SCENARIOS
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    runs = args.runs or (1 if args.quick else 3)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, cap), hard))
    ensure_node_modules()

    reference = Target("reference", "reference")
    template = make_template()
    summary: list[str] = []
    started = time.monotonic()
    try:
        for scenario in SCENARIOS:
            if scenario not in only:
                continue
            params = {**FULL[scenario], **(QUICK[scenario] if args.quick else {})}
            targets = newage_targets(scenario, args.coalesce_ms, args.transport, args.default_only)
            if scenario != "history" and not args.no_reference:
                targets.append(reference)
            t0 = time.monotonic()
            results = run_scenario(scenario, targets, params, runs, template, args.profile)
            checks = targets_for(scenario, results)
            settings = {t.name: settings_for(t, scenario) for t in targets if t.kind == "ours"}
            path = save(
                scenario,
                {
                    "scenario": scenario,
                    "description": DESCRIPTIONS[scenario],
                    "commit": git_commit(),
                    "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "quick": args.quick,
                    "runs": runs,
                    "seconds": round(time.monotonic() - t0),
                    "params": params,
                    "settings": settings,
                    "default_config": DEFAULT_CONFIG,
                    "targets": checks,
                    "ratios": ratios_to_reference(scenario, results),
                    "results": results,
                },
                args.results,
            )
            lines = [f"### {scenario}", "", *table(scenario, results), ""]
            for entry in checks:
                mark = "MET" if entry["met"] else f"MISSED by {entry.get('missed_by', '?')}"
                unit = entry.get("unit", "")
                lines.append(
                    f"- {entry['target']} [{entry['config']}]: {fmt(entry['value'])}{unit}"
                    f" (target {fmt(entry['limit'])}{unit}) {mark}"
                )
            lines.append(f"\n({path})\n")
            summary += lines
            print("\n".join(lines), flush=True)
    finally:
        shutil.rmtree(template[0], ignore_errors=True)
    print(f"\n# Summary ({time.monotonic() - started:.0f} s)\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
