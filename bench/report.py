"""The results as a terminal table, and as the figures section of docs/benchmarks.md.

The doc's section between the two markers below is generated from the JSON, so it cannot drift
from it: `python -m bench.report [results.json]` rewrites it (from bench/results/latest.json by
default), and a full `make bench` does so itself. Everything outside the markers (the analysis)
is left as it is.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.settings import DOC, RESULTS_DIR, ROOT
from bench.workflows import CHAIN_NODES

BEGIN = "<!-- bench:figures:begin -->"
END = "<!-- bench:figures:end -->"
MISSING = "—"


def get(results: dict[str, Any], dotted: str) -> Any:
    value: Any = results
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    if math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 3)


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Ours divided by the ceiling's or the peer's figure, for throughput and for latency."""
    return {
        "runs_per_s_vs_sse_ceiling": _ratio(
            get(results, "e2e.runs_per_s"), get(results, "ceiling.sse_runs_per_s")
        ),
        "p50_ms_c1_vs_sse_ceiling": _ratio(
            get(results, "e2e.p50_ms_c1"), get(results, "ceiling.sse_p50_ms_c1")
        ),
        "runs_per_s_vs_restate": _ratio(
            get(results, "e2e.runs_per_s"), get(results, "peers.restate.runs_per_s")
        ),
        "p50_ms_c1_vs_restate": _ratio(
            get(results, "e2e.p50_ms_c1"), get(results, "peers.restate.p50_ms_c1")
        ),
        "p99_ms_c32_vs_restate": _ratio(
            get(results, "e2e.p99_ms_c32"), get(results, "peers.restate.p99_ms_c32")
        ),
    }


def _num(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _x(value: Any) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def load_rows(results: dict[str, Any]) -> list[list[str]]:
    """system, clients, runs/s, p50, p90, p99, errors."""
    rows: list[list[str]] = []

    def add(system: str, clients: int, stats: Any) -> None:
        if not isinstance(stats, dict):
            rows.append([system, str(clients), *[MISSING] * 5])
            return
        rows.append(
            [
                system,
                str(clients),
                _num(stats.get("runs_per_s")),
                _num(stats.get("p50_ms")),
                _num(stats.get("p90_ms")),
                _num(stats.get("p99_ms")),
                str(stats.get("errors", MISSING)),
            ]
        )

    for clients in (1, 32, 256):
        add("flowstream (SSE)", clients, get(results, f"e2e.detail.c{clients}"))
    for clients in (1, 32):
        add("SSE ceiling (bare FastAPI)", clients, get(results, f"ceiling.sse_detail.c{clients}"))
    server = get(results, "peers.restate.server") or "Restate"
    for clients in (1, 32):
        add(server, clients, get(results, f"peers.restate.detail.c{clients}"))
    return rows


def ratio_rows(results: dict[str, Any]) -> list[list[str]]:
    r = results.get("ratios") or ratios(results)
    return [
        ["flowstream / SSE ceiling, runs/s at 32 clients", _x(r.get("runs_per_s_vs_sse_ceiling"))],
        [
            "flowstream / SSE ceiling, p50 latency at 1 client",
            _x(r.get("p50_ms_c1_vs_sse_ceiling")),
        ],
        ["flowstream / Restate, runs/s at 32 clients", _x(r.get("runs_per_s_vs_restate"))],
        ["flowstream / Restate, p50 latency at 1 client", _x(r.get("p50_ms_c1_vs_restate"))],
        ["flowstream / Restate, p99 latency at 32 clients", _x(r.get("p99_ms_c32_vs_restate"))],
    ]


def scale_rows(results: dict[str, Any]) -> list[list[str]]:
    def g(key: str) -> Any:
        return get(results, key)

    rows = [
        [
            "NATS request/reply round trip, p50 / p99",
            f"{_num(g('ceiling.nats_rtt_us'))} / {_num(g('ceiling.nats_rtt_p99_us'))} µs",
        ],
        [
            f"engine overhead per node ({g('scale.chain.nodes') or CHAIN_NODES:,}-node chain "
            "vs 3 nodes)",
            f"{_num(g('scale.chain.per_node_us'))} µs",
        ],
        [
            "chain run, p50 (events per run)",
            f"{_num(g('scale.chain.p50_ms'))} ms ({_num(g('scale.chain.events_per_run'), 0)})",
        ],
        [
            f"gateway RSS per open SSE stream ({_num(g('scale.streams.opened'), 0)} streams open)",
            f"{_num(g('scale.streams.gateway_rss_per_stream_kb'))} KiB",
        ],
        [
            "gateway RSS before → with the streams open",
            f"{_num(g('scale.streams.gateway_rss_before_mb'))} → "
            f"{_num(g('scale.streams.gateway_rss_after_mb'))} MiB",
        ],
        [
            "client disconnect → `stopped` in the event log, p50 / p99",
            f"{_num(g('scale.disconnect.p50_ms'))} / {_num(g('scale.disconnect.p99_ms'))} ms",
        ],
    ]
    for store, rate in (g("scale.history.events_per_s") or {"per store": None}).items():
        rows.append([f"history projection, {store}", f"{_num(rate)} events/s"])
    rows.append(
        [
            "runs/s at 32 clients, 1 engine → 2 engines",
            f"{_num(g('scale.engines.runs_per_s_1_engine'))} → "
            f"{_num(g('scale.engines.runs_per_s_2_engines'))} "
            f"({_x(g('scale.engines.speedup'))}; second engine ran "
            f"{_num(_pct(g('scale.engines.second_engine_share')), 0)} %)",
        ]
    )
    return rows


def _pct(share: Any) -> float | None:
    return share * 100 if isinstance(share, int | float) else None


def missing_notes(results: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    for name, peer in (results.get("peers") or {}).items():
        if isinstance(peer, dict) and peer.get("error"):
            notes.append(f"{name}: not measured: {peer['error'].splitlines()[0]}")
        elif isinstance(peer, dict) and peer.get("skipped"):
            notes.append(f"{name}: {peer['skipped']}")
    for phase, why in (results.get("not_measured") or {}).items():
        notes.append(f"{phase}: {why}")
    return notes


def _table(header: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    settings = results.get("settings", {})
    lines = [
        BEGIN,
        "<!-- Generated by `python -m bench.report` from bench/results/latest.json: "
        "change the generator (bench/report.py), not this text. -->",
        "",
        "## Figures",
        "",
        f"Measured {results.get('measured_at', MISSING)} on {machine.get('cpus', '?')} CPUs "
        f"({machine.get('processor', '?')}, {machine.get('platform', '?')}), "
        f"Python {machine.get('python', '?')}; "
        f"`BENCH_SECONDS={settings.get('bench_seconds', '?')}`.",
        "",
        "### End to end, ceiling and peer",
        "",
        *_table(
            ["system", "clients", "runs/s", "p50 ms", "p90 ms", "p99 ms", "errors"],
            load_rows(results),
            ["---", "---:", "---:", "---:", "---:", "---:", "---:"],
        ),
        "",
        "### Ratios (below 1: fewer runs/s, or lower latency, than the other)",
        "",
        *_table(["ratio", "value"], ratio_rows(results), ["---", "---:"]),
        "",
        "### Scale",
        "",
        *_table(["figure", "value"], scale_rows(results), ["---", "---:"]),
        "",
        f"{MISSING}: not in the results file (the phase was skipped, failed, or predates it).",
    ]
    notes = missing_notes(results)
    if notes:
        lines += ["", "Not measured in this run:", "", *[f"- {note}" for note in notes]]
    lines += [END]
    return "\n".join(lines)


def write_doc(results: dict[str, Any], doc: Path = DOC) -> None:
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc}: the markers {BEGIN} and {END} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(head + markdown(results) + tail)


def print_tables(results: dict[str, Any]) -> None:
    header = ["system", "clients", "runs/s", "p50 ms", "p90 ms", "p99 ms", "errors"]
    rows = load_rows(results)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            row[0].ljust(widths[0])
            + "".join(cell.rjust(w + 2) for cell, w in zip(row[1:], widths[1:], strict=True))
        )
    print()
    pairs = ratio_rows(results) + scale_rows(results)
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        print(f"{label.ljust(width)}  {value}")
    for note in missing_notes(results):
        print(f"not measured: {note}")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR / "latest.json"
    results = json.loads(path.read_text())
    write_doc(results)
    print(f"{DOC.relative_to(ROOT)}: figures regenerated from {path}")


if __name__ == "__main__":
    main()
