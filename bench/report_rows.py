"""The rows of every results table, computed from the results JSON alone (bench/report.py lays
them out for the terminal and for docs/benchmarks.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench.workflows import CHAIN_NODES

MISSING = "—"
CONNECTIONS = (1, 32, 256)
FIGURES = ("runs_per_s", "p50_ms", "p99_ms")
# Where each system's ladder is in the results, and the prefix of its flat figures.
SYSTEMS = {
    "flowstream": ("e2e", ""),
    "sse_ceiling": ("ceiling", "sse_"),
    "restate": ("peers.restate", ""),
}

# Every load phase measured with wrk, by system: where its per-connection details are.
LADDERS = {
    "flowstream": "e2e.detail",
    "flowstream, 3-node cluster": "scale.cluster.detail",
    "SSE ceiling": "ceiling.sse_detail",
    "Restate": "peers.restate.detail",
}


def get(results: dict[str, Any], dotted: str) -> Any:
    value: Any = results
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def _ratio(a: Any, b: Any) -> float | None:
    if not _is_number(a) or not _is_number(b) or not b:
        return None
    return round(float(a) / float(b), 3)


def figure(results: dict[str, Any], system: str, name: str, connections: int) -> Any:
    where, prefix = SYSTEMS[system]
    return get(results, f"{where}.{prefix}{name}_c{connections}")


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Ours divided by the peer's or the ceiling's, per figure and connection count: below 1 is
    fewer runs/s, or a lower latency, than the other."""
    found: dict[str, float | None] = {}
    for other, suffix in (("restate", "vs_restate"), ("sse_ceiling", "vs_sse_ceiling")):
        for connections in CONNECTIONS:
            for name in FIGURES:
                found[f"{name}_c{connections}_{suffix}"] = _ratio(
                    figure(results, "flowstream", name, connections),
                    figure(results, other, name, connections),
                )
    return found


def num(value: Any, digits: int = 1) -> str:
    if not _is_number(value):
        return MISSING
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def times(value: Any) -> str:
    return f"{value:.2f}x" if _is_number(value) else MISSING


def percent(value: Any) -> str:
    return f"{value:+.1f} %" if _is_number(value) else MISSING


def load_rows(results: dict[str, Any]) -> list[list[str]]:
    """system, connections, runs/s, p50, p90, p99, max, errors."""
    names = {
        "flowstream": "flowstream (SSE)",
        "sse_ceiling": "SSE ceiling (bare FastAPI)",
        "restate": get(results, "peers.restate.server") or "Restate",
    }
    details = {
        "flowstream": "e2e.detail",
        "sse_ceiling": "ceiling.sse_detail",
        "restate": "peers.restate.detail",
    }
    rows: list[list[str]] = []
    for system, label in names.items():
        for connections in CONNECTIONS:
            stats = get(results, f"{details[system]}.c{connections}")
            if not isinstance(stats, dict):
                rows.append([label, str(connections), *[MISSING] * 6])
                continue
            rows.append(
                [
                    label,
                    str(connections),
                    num(stats.get("runs_per_s")),
                    *(num(stats.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
                    str(stats.get("errors", MISSING)),
                ]
            )
    return rows


def ratio_rows(results: dict[str, Any]) -> list[list[str]]:
    """connections, then runs/s, p50 and p99 against Restate, then against the SSE ceiling."""
    r = results.get("ratios") or ratios(results)
    return [
        [
            str(connections),
            *(
                times(r.get(f"{name}_c{connections}_{other}"))
                for other in ("vs_restate", "vs_sse_ceiling")
                for name in FIGURES
            ),
        ]
        for connections in CONNECTIONS
    ]


def _cpu_of(results: dict[str, Any], where: str) -> dict[str, Any]:
    found = get(results, f"{where}.cpu.ms_per_run")
    return found if isinstance(found, dict) else {}


def cpu_rows(results: dict[str, Any]) -> list[list[str]]:
    """system, process, CPU ms per run at 1 / 32 / 256 connections, cores busy at 32."""
    rows: list[list[str]] = []
    for system, where in LADDERS.items():  # the cluster: 1 and 32 connections only
        per_level = {n: _cpu_of(results, f"{where}.c{n}") for n in CONNECTIONS}
        cores = get(results, f"{where}.c32.cpu.cores") or {}
        names = list(dict.fromkeys(name for level in per_level.values() for name in level))
        for name in names:
            rows.append(
                [
                    system,
                    name,
                    *(num(per_level[n].get(name), 2) for n in CONNECTIONS),
                    num(cores.get(name), 2),
                ]
            )
    return rows


def machine_rows(results: dict[str, Any]) -> list[list[str]]:
    """system, connections, cores busy on the whole machine, of them not ours, stolen."""
    rows: list[list[str]] = []
    for system, where in LADDERS.items():
        for connections in CONNECTIONS:
            machine = get(results, f"{where}.c{connections}.cpu.machine")
            if isinstance(machine, dict):
                rows.append(
                    [
                        system,
                        str(connections),
                        *(num(machine.get(k), 2) for k in ("busy_cores", "other_cores")),
                        num(machine.get("steal_cores"), 2),
                    ]
                )
    return rows


def other_load(results: dict[str, Any]) -> float | None:
    """The mean of the cores other processes kept busy over the load phases, or None."""
    found = [
        machine["other_cores"]
        for where in LADDERS.values()
        for connections in CONNECTIONS
        if isinstance(machine := get(results, f"{where}.c{connections}.cpu.machine"), dict)
        and _is_number(machine.get("other_cores"))
    ]
    return round(sum(found) / len(found), 2) if found else None


def message_rows(results: dict[str, Any]) -> list[list[str]]:
    """process, NATS messages received and published per run at 32 connections."""
    found = get(results, "e2e.detail.c32.nats_messages_per_run") or {}
    return [
        [name, num(counts.get("received")), num(counts.get("published"))]
        for name, counts in found.items()
        if isinstance(counts, dict)
    ]


def gateway_rows(results: dict[str, Any]) -> list[list[str]]:
    """gateways, gateway, connections, runs/s, runs, messages received, per run of its own."""
    rows: list[list[str]] = []
    for count in ("1", "3"):
        per_gateway = get(results, f"scale.gateways.{count}.gateways") or {}
        for name, g in per_gateway.items():
            rows.append(
                [
                    count,
                    name,
                    str(g.get("connections", MISSING)),
                    num(g.get("runs_per_s")),
                    num(g.get("runs_submitted"), 0),
                    num(g.get("nats_messages_received"), 0),
                    num(g.get("messages_per_own_run")),
                ]
            )
    return rows


def scale_rows(results: dict[str, Any]) -> list[list[str]]:
    def g(key: str) -> Any:
        return get(results, key)

    cpu_per_node = g("scale.chain.cpu_us_per_node") or {}
    rows = [
        [
            "NATS request/reply round trip, p50 / p99",
            f"{num(g('ceiling.nats_rtt_us'))} / {num(g('ceiling.nats_rtt_p99_us'))} µs",
        ],
        [
            f"overhead per node ({g('scale.chain.nodes') or CHAIN_NODES:,}-node chain vs 3 nodes, "
            "p50 at one connection)",
            f"{num(g('scale.chain.per_node_us'))} µs",
        ],
        [
            "chain run, p50 (events per run)",
            f"{num(g('scale.chain.p50_ms'))} ms ({num(g('scale.chain.events_per_run'), 0)})",
        ],
        [
            "CPU per node, by process",
            ", ".join(f"{name} {num(us)} µs" for name, us in cpu_per_node.items()) or MISSING,
        ],
        [
            f"gateway RSS per idle open SSE stream ({num(g('scale.streams.opened'), 0)} open, "
            f"{num(g('scale.streams.in_delay'), 0)} of their runs reached their DELAY)",
            f"{num(g('scale.streams.gateway_rss_per_stream_kb'))} KiB",
        ],
        [
            "gateway RSS before → with the streams open",
            f"{num(g('scale.streams.gateway_rss_before_mb'))} → "
            f"{num(g('scale.streams.gateway_rss_after_mb'))} MiB",
        ],
        [
            "client disconnect → `stopped` in the event log, p50 / p99",
            f"{num(g('scale.disconnect.p50_ms'))} / {num(g('scale.disconnect.p99_ms'))} ms",
        ],
    ]
    for store, rate in (g("scale.history.events_per_s") or {"per store": None}).items():
        rows.append([f"history projection, {store}", f"{num(rate)} events/s"])
    share = g("scale.engines.second_engine_share")
    rows += [
        [
            "runs/s at 32 connections, 1 engine → 2 engines",
            f"{num(g('scale.engines.runs_per_s_1_engine'))} → "
            f"{num(g('scale.engines.runs_per_s_2_engines'))} "
            f"({times(g('scale.engines.speedup'))}; second engine ran "
            f"{num(share * 100 if _is_number(share) else None, 0)} %)",
        ],
        [
            "runs/s at 32 connections, 1 gateway → 3 gateways",
            f"{num(g('scale.gateways.runs_per_s_1_gateway'))} → "
            f"{num(g('scale.gateways.runs_per_s_3_gateways'))} "
            f"({times(g('scale.gateways.speedup'))})",
        ],
        [
            "runs/s at 32 connections, single node → 3-node cluster, replicas 3",
            f"{num(g('scale.cluster.single_node_runs_per_s'))} → "
            f"{num(g('scale.cluster.runs_per_s'))} ({times(g('scale.cluster.vs_single_node'))})",
        ],
        [
            "p50 at one connection, 3-node cluster, replicas 3",
            f"{num(g('scale.cluster.p50_ms_c1'))} ms",
        ],
    ]
    return rows


def _verdict(ok: bool | None) -> str:
    return MISSING if ok is None else ("met" if ok else "missed")


def _check(value: Any, test: Callable[[float], bool]) -> bool | None:
    return test(value) if _is_number(value) else None


def goal_rows(results: dict[str, Any]) -> list[list[str]]:
    """goal, measured, met or missed."""
    r = results.get("ratios") or ratios(results)

    def g(key: str) -> Any:
        return get(results, key)

    best = max(
        (v for v in (g("e2e.runs_per_s_c32"), g("e2e.runs_per_s_c256")) if _is_number(v)),
        default=None,
    )
    own = g("scale.gateways.each_receives_only_its_own_events")
    goals: list[tuple[str, str, bool | None]] = [
        (
            "runs/s at 32 connections ≥ 1.5x Restate's",
            times(r.get("runs_per_s_c32_vs_restate")),
            _check(r.get("runs_per_s_c32_vs_restate"), lambda v: v >= 1.5),
        ),
        (
            "p50 at 1 connection ≤ 0.6x Restate's",
            times(r.get("p50_ms_c1_vs_restate")),
            _check(r.get("p50_ms_c1_vs_restate"), lambda v: v <= 0.6),
        ),
        (
            "overhead per node ≤ 300 µs",
            f"{num(g('scale.chain.per_node_us'))} µs",
            _check(g("scale.chain.per_node_us"), lambda v: v <= 300),
        ),
        (
            "≤ 16 KiB gateway memory per idle open stream",
            f"{num(g('scale.streams.gateway_rss_per_stream_kb'))} KiB",
            _check(g("scale.streams.gateway_rss_per_stream_kb"), lambda v: v <= 16),
        ),
        (
            "3 gateways: each receives only the events of its own streams",
            MISSING if own is None else ("yes" if own else "no"),
            own,
        ),
        (
            "3-node cluster, replicas 3: ≥ 0.6x the single node's runs/s",
            times(g("scale.cluster.vs_single_node")),
            _check(g("scale.cluster.vs_single_node"), lambda v: v >= 0.6),
        ),
        (
            "≥ 1,000 runs/s end to end",
            f"{num(best)} runs/s",
            _check(best, lambda v: v >= 1000),
        ),
        (
            "p50 ≤ 3 ms at one connection",
            f"{num(g('e2e.p50_ms_c1'))} ms",
            _check(g("e2e.p50_ms_c1"), lambda v: v <= 3),
        ),
        (
            "template budgets cost ≤ 5 % (render, greet run, chain run, vs the code before them)",
            percent(g("scale.templates.cost_pct")),
            _check(g("scale.templates.cost_pct"), lambda v: v <= 5),
        ),
        (
            "client disconnect → `stopped` ≤ 100 ms",
            f"{num(g('scale.disconnect.p99_ms'))} ms (p99)",
            _check(g("scale.disconnect.p99_ms"), lambda v: v <= 100),
        ),
    ]
    return [[goal, measured, _verdict(ok)] for goal, measured, ok in goals]


def missing_notes(results: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    for name, peer in (results.get("peers") or {}).items():
        if isinstance(peer, dict) and peer.get("error"):
            notes.append(f"{name}: not measured: {peer['error'].splitlines()[0]}")
        elif isinstance(peer, dict) and peer.get("skipped"):
            notes.append(f"{name}: {peer['skipped']}")
    for phase, why in (results.get("not_measured") or {}).items():
        notes.append(f"{phase}: {' / '.join(str(why).splitlines())[:600]}")
    return notes


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """The README's table: the headline figures of the three systems side by side."""
    systems = ("flowstream", "restate", "sse_ceiling")
    return [
        [label, *(f"{num(figure(results, system, name, n))}{unit}" for system in systems)]
        for label, name, n, unit in (
            ("runs/s, 32 connections", "runs_per_s", 32, ""),
            ("runs/s, 256 connections", "runs_per_s", 256, ""),
            ("p50, 1 connection", "p50_ms", 1, " ms"),
            ("p99, 32 connections", "p99_ms", 32, " ms"),
        )
    ]


def goals_met(results: dict[str, Any]) -> tuple[int, int]:
    verdicts = [row[2] for row in goal_rows(results)]
    return verdicts.count("met"), len(verdicts)
