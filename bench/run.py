"""The benchmark driver: every scenario against newage and, in the same run,
against the Node reference relay (bench/reference/server.mjs).

    python -m bench.run [--quick] [--only relay,fanout,...] [--runs N]
                        [--coalesce-ms N] [--no-reference] [--profile DIR]
                        [--set KEY=JSON ...] [--results DIR]

Scenarios (docs/performance.md says what each measures and how):
relay, fanout, concurrency, idle, connect, history. newage runs with
``streamCoalesceMs`` 0 and with ``--coalesce-ms`` (default 10) for the
streaming scenarios. Each (scenario, server) gets a fresh server; the load
generator is bench/reference/loadgen.mjs (Node, socket.io-client) for all
but ``connect`` (raw Engine.IO clients in Python, bench/connect_rate.py).
Results: bench/results/<scenario>.json (medians and per-run numbers) and a
summary table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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

from bench import connect_rate
from bench.common import (
    RESULTS,
    ROOT,
    ensure_node_modules,
    median,
    newage_server,
    reference_server,
    run_cli,
    run_loadgen,
    save,
)
from bench.history import fill_history

SCENARIOS = ["relay", "fanout", "concurrency", "idle", "connect", "history"]
STREAMING = {"relay", "fanout", "concurrency"}
REF_KEY = "bench-reference-key"
CLIENT, EXTENSION, ADMIN = "bench-client", "SillyTavern-bench", "bench-admin"

# Settings of every newage server in the benchmark (the rest are defaults).
BASE_SETTINGS: dict[str, Any] = {"bcryptCost": 4, "authFailureLimit": 1_000_000}
SCENARIO_SETTINGS: dict[str, dict[str, Any]] = {"history": {"contextSendDelay": 0}}

FULL: dict[str, dict[str, Any]] = {
    "relay": {"tokens": 20_000, "window": 100, "timeoutS": 600},
    "fanout": {"tokens": 2_000, "window": 100, "clients": 100, "room": "fan", "timeoutS": 600},
    "concurrency": {"streams": 200, "rate": 40, "seconds": 30, "drainS": 30},
    "idle": {"clients": 2_000, "warm": 50, "parallel": 50, "settleS": 3},
    "connect": {"seconds": 3, "concurrency": 16},
    "history": {
        "messages": 10_000,
        "room": "history",
        "requestRoom": "history-big",
        "contextRoom": "history-100",
        "contextRoomMessages": 100,
        "emptyRoom": "history-empty",
        "member": "hist-client",
        "requests": 100,
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
}

DESCRIPTIONS = {
    "relay": "One extension streams tokens (real wire protocol: START, 5 data sub-chunks, END "
    "per token) to a room with one client; closed loop with `window` tokens in flight.",
    "fanout": "The same stream to a room of `clients` clients.",
    "concurrency": "`streams` extensions each stream to their own client at `rate` tokens/s "
    "for `seconds` (open loop, staggered); added latency, loss, reordering.",
    "idle": "RSS per idle client (one Engine.IO connection with `/` and `/llm`).",
    "connect": "Authenticated namespace connects per second (raw Engine.IO clients).",
    "history": "GET_FULL_CONTEXT of a `messages`-message room (newage only), and LLM_REQUEST "
    "cost into that room vs an empty one.",
}

# Headline metrics per scenario: (key, label, show the ratio ours/reference).
HEADLINES: dict[str, list[tuple[str, str, bool]]] = {
    "relay": [
        ("tokens_per_s", "tokens/s delivered", True),
        ("server_cpu_us_per_token", "server CPU µs/token", True),
        ("latency_p50_ms", "latency p50 ms", True),
        ("latency_p99_ms", "latency p99 ms", True),
        ("lost", "tokens lost", False),
        ("reordered", "tokens reordered", False),
        ("chunks_per_event", "sub-chunks per SERVER_STREAM_DATA", False),
        ("other_cpu_util", "other processes' CPU (cores)", False),
    ],
    "fanout": [
        ("tokens_per_s", "tokens/s (to all clients)", True),
        ("deliveries_per_s", "token deliveries/s", True),
        ("server_cpu_us_per_token", "server CPU µs/token", True),
        ("server_cpu_us_per_delivery", "server CPU µs/delivery", True),
        ("latency_p50_ms", "latency p50 ms", True),
        ("latency_p99_ms", "latency p99 ms", True),
        ("lost", "tokens lost", False),
        ("reordered", "tokens reordered", False),
        ("chunks_per_event", "sub-chunks per SERVER_STREAM_DATA", False),
        ("other_cpu_util", "other processes' CPU (cores)", False),
    ],
    "concurrency": [
        ("latency_p50_ms", "added latency p50 ms", True),
        ("latency_p99_ms", "added latency p99 ms", True),
        ("lost", "tokens lost", False),
        ("reordered", "tokens reordered", False),
        ("server_cpu_us_per_token", "server CPU µs/token", True),
        ("server_cpu_util", "server CPU (cores)", True),
        ("drain_ms", "drain after last send ms", True),
        ("generator_lag_p99_ms", "generator lag p99 ms", True),
        ("chunks_per_event", "sub-chunks per SERVER_STREAM_DATA", False),
        ("other_cpu_util", "other processes' CPU (cores)", False),
    ],
    "idle": [
        ("rss_kb_per_connection", "RSS KB per idle client", True),
        ("server_cpu_ms_per_client", "server CPU ms per connect", True),
        ("connect_seconds", "seconds to connect all", True),
    ],
    "connect": [
        ("namespace_rooms.connects_per_second", "/rooms namespace connects/s", True),
        ("namespace_llm.connects_per_second", "/llm namespace connects/s", True),
        ("full_rooms.connects_per_second", "/rooms full connects/s", True),
        ("full_llm.connects_per_second", "/llm full connects/s", True),
        ("namespace_llm.server_cpu_ms_per_connect", "/llm ns connect CPU ms", True),
        ("full_llm.server_cpu_ms_per_connect", "/llm full connect CPU ms", True),
    ],
    "history": [
        ("ack_ms", "GET_FULL_CONTEXT ack ms", True),
        ("first_page_ms", "first page ms", True),
        ("all_pages_ms", "all pages ms", True),
        ("request_big.server_cpu_ms_per_request", "LLM_REQUEST CPU ms (big room)", True),
        ("request_100.server_cpu_ms_per_request", "LLM_REQUEST CPU ms (100-msg room)", True),
        ("request_empty.server_cpu_ms_per_request", "LLM_REQUEST CPU ms (empty room)", True),
        ("request_cpu_ratio", "request CPU big/empty", True),
        ("request_cpu_ratio_vs_100", "request CPU big/100-msg", True),
        ("request_big.round_trip_ms", "request round trip ms (big)", True),
        ("request_100.round_trip_ms", "request round trip ms (100-msg)", True),
        ("request_empty.round_trip_ms", "request round trip ms (empty)", True),
        ("request_latency_ratio", "round trip big/empty", True),
    ],
}


@dataclass
class Target:
    name: str
    kind: str  # ours | reference
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Server:
    url: str
    pid: int
    creds: dict[str, dict[str, str]]


# ---------------------------------------------------------------------- servers
def make_template() -> tuple[Path, dict[str, dict[str, str]]]:
    """A data directory with the benchmark's trust entries and keys, made once."""
    data = Path(tempfile.mkdtemp(prefix="newage-bench-template-"))
    run_cli(data, "init")
    path = data / "settings" / "server_settings.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **BASE_SETTINGS}))
    creds: dict[str, dict[str, str]] = {}
    for role, client_id, kind in (
        ("client", CLIENT, "client"),
        ("ext", EXTENSION, "SillyTavern"),
        ("admin", ADMIN, "monitor"),
    ):
        run_cli(data, "trust", "add", client_id, "--type", kind)
        creds[role] = {"clientId": client_id, "key": run_cli(data, "keys", "create", client_id)}
    return data, creds


@contextlib.contextmanager
def serve(
    target: Target,
    template: tuple[Path, dict[str, dict[str, str]]],
    extra: dict[str, Any] | None = None,
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
    settings = {**BASE_SETTINGS, **target.settings, **(extra or {})}
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


# ---------------------------------------------------------------------- numbers
def get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key: the median of numbers, any() of booleans, recursively; lists
    (``problems``) are joined."""
    out: dict[str, Any] = {}
    keys = list(dict.fromkeys(k for r in runs for k in r))
    for key in keys:
        values: list[Any] = [r[key] for r in runs if key in r]
        if all(isinstance(v, bool) for v in values):
            out[key] = any(values)
        elif all(isinstance(v, (int, float)) for v in values):
            m = median([float(v) for v in values])
            out[key] = int(m) if m.is_integer() and all(isinstance(v, int) for v in values) else m
        elif all(isinstance(v, dict) for v in values):
            out[key] = medians(values)
        elif all(isinstance(v, list) for v in values):
            out[key] = [x for v in values for x in v][:10]
        else:
            out[key] = values[0]
    return out


def ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return None
    return round(a / b, 2)


def check(name: str, value: Any, limit: float, config: str, unit: str = "") -> dict[str, Any]:
    """A target ``value <= limit``; how far off when missed."""
    met = isinstance(value, (int, float)) and value <= limit
    entry: dict[str, Any] = {"target": name, "config": config, "value": value, "limit": limit}
    entry["met"] = met
    if isinstance(value, (int, float)) and not met:
        if not limit:
            entry["missed_by"] = f"{fmt(value)} over"
        elif value >= 2 * limit:
            entry["missed_by"] = f"{value / limit:.1f}x the limit"
        else:
            entry["missed_by"] = f"{100 * (value / limit - 1):.0f}% over the limit"
    if unit:
        entry["unit"] = unit
    return entry


def targets_for(scenario: str, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    ours = [n for n in results if n.startswith("ours")]
    med = {n: results[n]["median"] for n in results}
    out: list[dict[str, Any]] = []
    if scenario in ("relay", "fanout", "concurrency") and "reference" in med:
        ref = med["reference"].get("server_cpu_us_per_token")
        best = min(ours, key=lambda n: med[n].get("server_cpu_us_per_token") or 1e18)
        out.append(
            check(
                "server CPU per relayed token / reference",
                ratio(med[best].get("server_cpu_us_per_token"), ref),
                3.0,
                best,
                "x",
            )
        )
    if scenario in ("relay", "fanout", "concurrency"):
        for n in ours:
            bad = sum(med[n].get(k) or 0 for k in ("lost", "reordered", "text_mismatch"))
            out.append(check("tokens lost or reordered", bad, 0, n))
    if scenario == "concurrency":
        best = min(ours, key=lambda n: med[n].get("latency_p99_ms") or 1e18)
        out.append(check("added latency p99", med[best].get("latency_p99_ms"), 25, best, "ms"))
    if scenario == "idle":
        for n in ours:
            value = med[n].get("rss_kb_per_connection")
            out.append(check("RSS per idle connection", value, 40, n, "KB"))
    if scenario == "history":
        for n in ours:
            out.append(check("first page of 10,000", med[n].get("first_page_ms"), 50, n, "ms"))
            value = med[n].get("request_cpu_ratio")
            out.append(check("LLM_REQUEST CPU big/empty room", value, 1.2, n, "x"))
            value = med[n].get("request_latency_ratio")
            out.append(check("LLM_REQUEST round trip big/empty room", value, 1.2, n, "x"))
    return out


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
    extra = SCENARIO_SETTINGS.get(scenario)
    for target in targets:
        started = time.monotonic()
        print(f"== {scenario} / {target.name}", file=sys.stderr, flush=True)
        per_run: list[dict[str, Any]]
        if scenario == "connect":
            with serve(target, template, extra) as srv:
                auth = {"clientId": CLIENT, "key": srv.creds["client"]["key"]}
                kinds = ("full",) if target.kind == "reference" else ("namespace", "full")
                per_run = connect_runs(srv, auth, params, runs, kinds)
        elif scenario == "idle":
            # a fresh server per run: RSS only ever grows
            per_run = []
            for _ in range(runs):
                with serve(target, template, extra) as srv:
                    per_run += loadgen(scenario, target, srv, params, 1)
        else:
            prepare = history_prepare(params) if scenario == "history" else None
            with serve(target, template, extra, prepare) as srv:
                out = None
                if profile_dir is not None and target.kind == "ours":
                    out = profile_dir / f"{scenario}-{target.name}.txt"
                with profiled(srv.pid, out):
                    per_run = loadgen(scenario, target, srv, params, runs)
                if out is not None:
                    print(f"   profile: {out}", file=sys.stderr)
        results[target.name] = {"median": medians(per_run), "runs": per_run}
        took = time.monotonic() - started
        print(f"   {took:.0f} s: {json.dumps(results[target.name]['median'])}", file=sys.stderr)
    return results


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


def connect_runs(
    srv: Server, auth: dict[str, Any], params: dict[str, Any], runs: int, kinds: tuple[str, ...]
) -> list[dict[str, Any]]:
    measured = connect_rate.measure_all(
        srv.url, srv.pid, auth, params["seconds"], params["concurrency"], runs, kinds
    )
    return [{kind: measured[kind]["runs"][i] for kind in measured} for i in range(runs)]


def history_prepare(params: dict[str, Any]) -> Callable[[Path], None]:
    def prepare(data: Path) -> None:
        rooms = {
            params["room"]: params["messages"],
            params["requestRoom"]: params["messages"],
            params["contextRoom"]: params["contextRoomMessages"],
            params["emptyRoom"]: 0,
        }
        fill_history(data, rooms=rooms, member=params["member"], extension=f"{EXTENSION}-0")

    return prepare


# ---------------------------------------------------------------------- output
def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(scenario: str, results: dict[str, dict[str, Any]]) -> list[str]:
    names = list(results)
    ours = [n for n in names if n.startswith("ours")]
    has_ref = "reference" in results
    header = ["metric", *names] + [f"{n}/ref" for n in ours if has_ref]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, show in HEADLINES[scenario]:
        values = [get(results[n]["median"], key) for n in names]
        cells = [label, *(fmt(v) for v in values)]
        if has_ref:
            ref = get(results["reference"]["median"], key)
            cells += [fmt(ratio(get(results[n]["median"], key), ref)) if show else "" for n in ours]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


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
    parser.add_argument("--coalesce-ms", type=int, default=10, help="newage's coalescing window")
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
        "--results", type=Path, default=RESULTS, help="where the JSON files go (bench/results)"
    )
    args = parser.parse_args()
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item}: expected KEY=VALUE")
        try:
            BASE_SETTINGS[key] = json.loads(value)
        except json.JSONDecodeError:
            BASE_SETTINGS[key] = value

    only = [s for s in args.only.split(",") if s] or SCENARIOS
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    runs = args.runs or (1 if args.quick else 3)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, cap), hard))
    ensure_node_modules()

    c = args.coalesce_ms
    ours0 = Target("ours_c0", "ours", {"streamCoalesceMs": 0})
    ours_c = Target(f"ours_c{c}", "ours", {"streamCoalesceMs": c})
    reference = Target("reference", "reference")
    template = make_template()
    summary: list[str] = []
    started = time.monotonic()
    try:
        for scenario in SCENARIOS:
            if scenario not in only:
                continue
            params = {**FULL[scenario], **(QUICK[scenario] if args.quick else {})}
            targets = [ours0, ours_c] if scenario in STREAMING and c != 0 else [ours0]
            if scenario != "history" and not args.no_reference:
                targets.append(reference)
            t0 = time.monotonic()
            results = run_scenario(scenario, targets, params, runs, template, args.profile)
            checks = targets_for(scenario, results)
            ratios = {
                f"{n}/reference": {
                    key: ratio(
                        get(results[n]["median"], key), get(results["reference"]["median"], key)
                    )
                    for key, _, show in HEADLINES[scenario]
                    if show
                }
                for n in results
                if n.startswith("ours") and "reference" in results
            }
            settings = {
                t.name: {**BASE_SETTINGS, **t.settings, **SCENARIO_SETTINGS.get(scenario, {})}
                for t in targets
                if t.kind == "ours"
            }
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
                    "targets": checks,
                    "ratios": ratios,
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
