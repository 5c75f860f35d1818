"""The benchmark's numbers: headline metrics, ratios to the reference,
targets (judged on newage's default configuration) and markdown tables."""

from __future__ import annotations

from typing import Any

from newage.settings import Settings

STREAMING = {"relay", "fanout", "concurrency"}
# newage's default configuration: what the targets are judged on. The
# field's default, not Settings(): that would read NEWAGE_* variables.
DEFAULT_COALESCE_MS: int = Settings.model_fields["stream_coalesce_ms"].default
DEFAULT_CONFIG = f"ours_c{DEFAULT_COALESCE_MS}"

# Headline metrics per scenario: (key, label, show the ratio ours/reference).
HEADLINES: dict[str, list[tuple[str, str, bool]]] = {
    "relay": [
        ("tokens_per_s", "tokens/s delivered", True),
        ("server_cpu_us_per_token", "server CPU µs/token", True),
        ("latency_p50_ms", "latency p50 ms", True),
        ("latency_p99_ms", "latency p99 ms", True),
        ("lost", "tokens lost (worst run)", False),
        ("reordered", "tokens reordered (worst run)", False),
        ("text_mismatch", "END text mismatches (worst run)", False),
        ("timed_out", "a run timed out", False),
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
        ("lost", "tokens lost (worst run)", False),
        ("reordered", "tokens reordered (worst run)", False),
        ("text_mismatch", "END text mismatches (worst run)", False),
        ("timed_out", "a run timed out", False),
        ("chunks_per_event", "sub-chunks per SERVER_STREAM_DATA", False),
        ("other_cpu_util", "other processes' CPU (cores)", False),
    ],
    "concurrency": [
        ("latency_p50_ms", "added latency p50 ms", True),
        ("latency_p99_ms", "added latency p99 ms", True),
        ("lost", "tokens lost (worst run)", False),
        ("reordered", "tokens reordered (worst run)", False),
        ("text_mismatch", "END text mismatches (worst run)", False),
        ("drain_timed_out", "a run did not drain in time", False),
        ("server_cpu_us_per_token", "server CPU µs/token", True),
        ("server_cpu_util", "server CPU (cores)", True),
        ("drain_ms", "drain after last send ms", True),
        ("generator_lag_p99_ms", "generator lag p99 ms", True),
        ("chunks_per_event", "sub-chunks per SERVER_STREAM_DATA", False),
        ("other_cpu_util", "other processes' CPU (cores)", False),
    ],
    "capacity": [
        ("capacity_streams", "streams within p99 50 ms, nothing lost", True),
        *(
            row
            for n in (50, 100, 150, 200)
            for row in (
                (f"s{n}.latency_p99_ms", f"{n} streams: added latency p99 ms", True),
                (f"s{n}.server_cpu_util", f"{n} streams: server CPU (cores)", True),
                (f"s{n}.server_cpu_us_per_token", f"{n} streams: server CPU µs/token", True),
                (f"s{n}.lost", f"{n} streams: tokens lost", False),
            )
        ),
    ],
    "idle": [
        ("rss_kb_per_connection", "RSS KB per idle client", True),
        ("server_cpu_ms_per_client", "server CPU ms per connect", True),
        ("connect_seconds", "seconds to connect all", True),
        ("other_cpu_util", "other processes' CPU (cores)", False),
    ],
    "connect": [
        ("namespace_rooms.connects_per_second", "/rooms namespace connects/s", True),
        ("namespace_llm.connects_per_second", "/llm namespace connects/s", True),
        ("full_rooms.connects_per_second", "/rooms full connects/s", True),
        ("full_llm.connects_per_second", "/llm full connects/s", True),
        ("namespace_llm.server_cpu_ms_per_connect", "/llm ns connect CPU ms", True),
        ("full_llm.server_cpu_ms_per_connect", "/llm full connect CPU ms", True),
        ("full_llm.other_cpu_util", "other processes' CPU (cores), /llm full", False),
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
        ("request_latency_ratio_vs_100", "round trip big/100-msg", True),
    ],
}
# Per-run counts the table shows for the worst run (and the targets sum over
# all runs), not the median: one bad run in three must show.
WORST = {"lost", "reordered", "text_mismatch"}
# Any of these true in a run: tokens may still have been on their way.
TIMEOUTS = ("timed_out", "drain_timed_out")


# ---------------------------------------------------------------------- numbers
def get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


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


def worst(runs: list[dict[str, Any]], key: str) -> Any:
    """The largest value of ``key`` over the runs (``None`` when none has it)."""
    values = [v for r in runs if isinstance(v := get(r, key), (int, float))]
    return max(values, default=None)


def reference_of(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in results.values() if r["kind"] == "reference"), None)


def targets_for(scenario: str, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets, judged on newage's default configuration only."""
    if DEFAULT_CONFIG not in results:
        return []
    n = DEFAULT_CONFIG
    med = results[n]["median"]
    runs = results[n]["runs"]
    ref = reference_of(results)
    out: list[dict[str, Any]] = []
    if scenario in STREAMING and ref is not None:
        value = ratio(
            med.get("server_cpu_us_per_token"), ref["median"].get("server_cpu_us_per_token")
        )
        out.append(check("server CPU per relayed token / reference", value, 3.0, n, "x"))
    if scenario in STREAMING:
        # every run counts: one lossy run in three is a loss
        bad = sum(r.get(k) or 0 for r in runs for k in ("lost", "reordered", "text_mismatch"))
        entry = check("tokens lost or reordered (all runs)", bad, 0, n)
        timeouts = sum(1 for r in runs if any(r.get(k) for k in TIMEOUTS))
        if timeouts:
            entry["met"] = False
            missed = [entry["missed_by"]] if "missed_by" in entry else []
            entry["missed_by"] = "; ".join([*missed, f"{timeouts} run(s) timed out"])
        out.append(entry)
    if scenario == "concurrency":
        out.append(check("added latency p99", med.get("latency_p99_ms"), 25, n, "ms"))
    if scenario == "idle":
        value = med.get("rss_kb_per_connection")
        out.append(check("RSS per idle connection", value, 40, n, "KB"))
    if scenario == "history":
        out.append(check("first page of 10,000", med.get("first_page_ms"), 50, n, "ms"))
        value = med.get("request_cpu_ratio")
        out.append(check("LLM_REQUEST CPU big/empty room", value, 1.2, n, "x"))
        value = med.get("request_latency_ratio")
        out.append(check("LLM_REQUEST round trip big/empty room", value, 1.2, n, "x"))
    return out


def history_ratios(med: dict[str, Any]) -> dict[str, float | None]:
    """The history scenario's ratios, from the medians the table shows."""
    cpu, trip = "server_cpu_ms_per_request", "round_trip_ms"
    return {
        "request_cpu_ratio": ratio(
            get(med, f"request_big.{cpu}"), get(med, f"request_empty.{cpu}")
        ),
        "request_cpu_ratio_vs_100": ratio(
            get(med, f"request_big.{cpu}"), get(med, f"request_100.{cpu}")
        ),
        "request_latency_ratio": ratio(
            get(med, f"request_big.{trip}"), get(med, f"request_empty.{trip}")
        ),
        "request_latency_ratio_vs_100": ratio(
            get(med, f"request_big.{trip}"), get(med, f"request_100.{trip}")
        ),
    }


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


def shown(result: dict[str, Any], key: str) -> Any:
    """A table cell: the worst run for WORST counts, else the median."""
    return worst(result["runs"], key) if key in WORST else get(result["median"], key)


def ratios_to_reference(scenario: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ref = reference_of(results)
    if ref is None:
        return {}
    return {
        f"{n}/reference": {
            key: ratio(get(r["median"], key), get(ref["median"], key))
            for key, _, show in HEADLINES[scenario]
            if show
        }
        for n, r in results.items()
        if r["kind"] == "ours"
    }


def table(scenario: str, results: dict[str, dict[str, Any]]) -> list[str]:
    names = list(results)
    ours = [n for n in names if results[n]["kind"] == "ours"]
    ref = reference_of(results)
    header = ["metric", *names] + [f"{n}/ref" for n in ours if ref is not None]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, show in HEADLINES[scenario]:
        cells = [label, *(fmt(shown(results[n], key)) for n in names)]
        if ref is not None:
            base = get(ref["median"], key)
            cells += [
                fmt(ratio(get(results[n]["median"], key), base)) if show else "" for n in ours
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
