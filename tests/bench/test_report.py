"""The figures section and its goals are computed from the results JSON alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import BEGIN, END, SUMMARY_BEGIN, SUMMARY_END, markdown, write_doc
from bench.report_costs import (
    NATS_AUTH_BEGIN,
    NATS_AUTH_END,
    auth_rows,
    queue_rows,
    template_rows,
)
from bench.report_rows import goal_rows, machine_rows, ratios
from bench.template_budgets import compare


def _ladder(runs_per_s: float, p50_ms: float, prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}runs_per_s_c1": runs_per_s / 4,
        f"{prefix}p50_ms_c1": p50_ms,
        f"{prefix}runs_per_s_c32": runs_per_s,
        f"{prefix}p50_ms_c32": p50_ms * 10,
    }


RESULTS: dict[str, Any] = {
    "machine": {"cpus": 2},
    "e2e": {
        **_ladder(300.0, 6.0),
        "p99_ms_c32": 100.0,
        "detail": {
            "c1": {"cpu": {"machine": {"busy_cores": 1.2, "other_cores": 0.2, "steal_cores": 0}}},
            "c32": {"cpu": {"machine": {"busy_cores": 2.0, "other_cores": 0.6, "steal_cores": 0}}},
        },
    },
    "ceiling": _ladder(600.0, 2.0, prefix="sse_"),
    "peers": {"restate": _ladder(150.0, 12.0)},
    "scale": {
        "chain": {"per_node_us": 450.0},
        "streams": {"gateway_rss_per_stream_kb": 12.5},
        "gateways": {"each_receives_only_its_own_events": True},
        "cluster": {"vs_single_node": 0.5},
        "queue": {
            "submit_publish": {"median_us": 154.0, "p95_us": 217.0},
            "cache_lookup": {"median_us": 200.4, "p95_us": 1240.0},
        },
        "templates": compare(
            {"greet_render_us": 3.5, "greet_run_us": 280.0, "chain_run_ms": 64.0},
            {"greet_render_us": 3.3, "greet_run_us": 297.0, "chain_run_ms": 62.0},
        ),
        "nats_auth": {
            "authorization_on": {"us_per_event": 86.2},
            "authorization_off": {"us_per_event": 91.0},
            "connect_ms": {
                "static_user": 1.24,
                "no_authorization": 0.94,
                "user_token_via_callout": 3.21,
            },
        },
    },
}


def _verdicts() -> dict[str, str]:
    return {goal: verdict for goal, _, verdict in goal_rows(RESULTS)}


def test_ratios_are_ours_over_theirs_at_the_same_connections() -> None:
    found = ratios(RESULTS)
    assert found["runs_per_s_c32_vs_restate"] == 2.0
    assert found["p50_ms_c1_vs_restate"] == 0.5
    assert found["runs_per_s_c32_vs_sse_ceiling"] == 0.5
    assert found["p99_ms_c32_vs_restate"] is None  # the peer has no such figure


def test_each_goal_is_met_or_missed_from_the_figures() -> None:
    verdicts = _verdicts()
    assert verdicts["runs/s at 32 connections ≥ 1.5x Restate's"] == "met"
    assert verdicts["p50 at 1 connection ≤ 0.6x Restate's"] == "met"
    assert verdicts["overhead per node ≤ 300 µs"] == "missed"
    assert verdicts["≤ 16 KiB gateway memory per idle open stream"] == "met"
    assert verdicts["3 gateways: each receives only the events of its own streams"] == "met"
    assert verdicts["3-node cluster, replicas 3: ≥ 0.6x the single node's runs/s"] == "missed"
    assert verdicts["client disconnect → `stopped` ≤ 100 ms"] == "—"  # not measured
    # the greet run's +6.1 % is the worst of the figures every run pays
    templates = (
        "template budgets cost ≤ 5 % (render, greet run, chain run, vs the code before them)"
    )
    assert verdicts[templates] == "missed"


def test_the_template_figures_are_compared_with_the_code_before_the_budgets() -> None:
    assert template_rows(RESULTS) == [
        ["`Hello {{input.name}}!` rendered", "3.5 µs", "3.3 µs", "-5.7 %"],
        ["the greet example executed in process", "280.0 µs", "297.0 µs", "+6.1 %"],
        ["a 1,000-node chain of plain references executed", "64.0 ms", "62.0 ms", "-3.1 %"],
    ]
    cheaper = compare({"greet_run_us": 300.0}, {"greet_run_us": 297.0})
    assert cheaper["cost_pct"] == -1.0


def test_the_doc_is_rewritten_between_its_markers_only(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"intro\n{BEGIN}\nold figures\n{END}\nanalysis\n")
    write_doc(RESULTS, doc, readme=None)
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("\nanalysis\n")
    assert "old figures" not in text
    assert markdown(RESULTS) in text
    assert "| 32 | 2.00x |" in text  # runs/s at 32 connections against Restate


def test_the_nats_doc_gets_what_authorization_costs(tmp_path: Path) -> None:
    doc, nats_doc = tmp_path / "benchmarks.md", tmp_path / "nats.md"
    doc.write_text(f"{BEGIN}\n{END}\n")
    nats_doc.write_text(
        f"## What authorization costs\n{NATS_AUTH_BEGIN}\nold\n{NATS_AUTH_END}\nwhy\n"
    )
    write_doc(RESULTS, doc, readme=None, nats_doc=nats_doc)
    text = nats_doc.read_text()
    assert (
        "| engine event publish (JetStream, fenced, 64 in flight) | 86 µs per event | 91 µs |"
        in (text)
    )
    assert "| a service connecting (static user) | 1.24 ms | 0.94 ms |" in text
    assert "old" not in text and text.endswith("\nwhy\n")
    assert auth_rows({}) == []  # not measured: the doc keeps its table
    nats_doc.write_text(f"{NATS_AUTH_BEGIN}\nkept\n{NATS_AUTH_END}\n")
    write_doc({}, doc, readme=None, nats_doc=nats_doc)
    assert "kept" in nats_doc.read_text()


def test_the_readme_gets_the_headline_figures(tmp_path: Path) -> None:
    doc, readme = tmp_path / "benchmarks.md", tmp_path / "README.md"
    doc.write_text(f"{BEGIN}\n{END}\n")
    readme.write_text(f"# x\n{SUMMARY_BEGIN}\n{SUMMARY_END}\nrest\n")
    write_doc(RESULTS, doc, readme)
    text = readme.read_text()
    assert "| runs/s, 32 connections | 300.0 | 150.0 | 600.0 |" in text
    assert text.endswith("\nrest\n")


def test_the_queue_steps_are_named_with_who_pays_them() -> None:
    assert queue_rows(RESULTS) == [
        ["command publish (baseline)", "gateway, every run", "154.0 µs", "217.0 µs"],
        ["result-cache lookup", "gateway, with `config.cache`", "200.4 µs", "1,240 µs"],
    ]
    assert "| result-cache lookup | gateway, with `config.cache` | 200.4 µs | 1,240 µs |" in (
        markdown(RESULTS)
    )


def test_the_machines_load_is_shown_per_phase_and_on_average() -> None:
    assert machine_rows(RESULTS) == [
        ["flowstream", "1", "1.20", "0.20", "0.00"],
        ["flowstream", "32", "2.00", "0.60", "0.00"],
    ]
    assert "other processes kept 0.40 of its 2 cores busy on average" in markdown(RESULTS)
