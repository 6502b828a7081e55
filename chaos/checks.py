"""What a scenario's evidence says: the clients' records, the stored log, the peer's count of
node executions and the faults. Each check gives a count (0 is the promise) and examples.

Attribution of repeated node executions: a node may run again only if it was in flight when a
fault that can interrupt a run struck (an engine or a NATS node going away): it had begun before
the fault (its first call reached the peer, or its `node_started` was stored) and its
`node_finished` was not stored before it. Each such fault allows one more call; any call beyond
is a finished node executed twice.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.eventlog import EventLog, RunLog
from chaos.faults import FaultRecord
from chaos.load import ClientRecord
from chaos.reads import ENDPOINTS, HistoryComparison

EXAMPLES = 8
Call = tuple[str, str, float]


@dataclass
class Check:
    failures: int = 0
    examples: list[str] = field(default_factory=list)

    def fail(self, example: str) -> None:
        self.failures += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)

    def as_json(self) -> dict[str, Any]:
        return {"failures": self.failures, "examples": self.examples}


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"samples": 0}
    ordered = sorted(values)
    return {
        "samples": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 3),
        "max_s": round(ordered[-1], 3),
    }


def client_run_ids(record: ClientRecord) -> set[str]:
    return record.answered_run_ids | record.follower.run_ids


def lost_and_stuck(records: list[ClientRecord], log: EventLog) -> dict[str, Check]:
    lost, stuck, never = Check(), Check(), Check()
    for record in records:
        ids = client_run_ids(record)
        if not ids:
            never.fail(f"key {record.key}: {record.gave_up}; {record.refusals[-1:]}")
        for run_id in ids:
            run = log.runs.get(run_id)
            if run is None or not run.events:
                lost.fail(f"run {run_id} (key {record.key}) has no event in the log")
    for run in log.runs.values():
        if run.events and not run.finished:
            last = run.events[-1]
            stuck.fail(
                f"run {run.run_id}: last event {last.event} seq {last.seq}, "
                f"{len(run.claims)} claims"
            )
    return {"lost": lost, "stuck": stuck, "never_accepted": never}


def log_integrity(log: EventLog) -> dict[str, Check]:
    finished, gaps, duplicates, order = Check(), Check(), Check(), Check()
    for run in log.runs.values():
        if not run.events:
            continue
        ends = run.finished
        if len(ends) > 1:
            finished.fail(
                f"run {run.run_id}: {len(ends)} workflow_finished at seqs {[e.seq for e in ends]} "
                f"(statuses {[e.body['data'].get('status') for e in ends]})"
            )
        seqs = [e.seq for e in run.events]
        counts = Counter(seqs)
        repeated = sorted(seq for seq, n in counts.items() if n > 1)
        if repeated:
            duplicates.fail(f"run {run.run_id}: seq stored twice: {repeated[:10]}")
        missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
        if missing:
            gaps.fail(f"run {run.run_id}: seqs missing {missing[:10]} of 1..{max(seqs)}")
        if seqs != sorted(seqs):
            order.fail(f"run {run.run_id}: stored out of seq order")
    return {
        "duplicate_finished": finished,
        "seq_gaps": gaps,
        "seq_duplicates": duplicates,
        "seq_out_of_order": order,
    }


def repeated_executions(
    calls: Iterable[Call], log: EventLog, faults: list[FaultRecord]
) -> tuple[dict[str, Check], dict[str, int]]:
    by_node: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    for run_id, node_id, at in calls:
        by_node[(run_id, node_id)].append(at)
    strikes = [f.at for f in faults if f.interrupts_runs]
    redone, after_finish, unknown = Check(), Check(), Check()
    allowed_repeats = 0
    for (run_id, node_id), arrivals in by_node.items():
        arrivals.sort()
        run = log.runs.get(run_id)
        if run is None:
            unknown.fail(f"run {run_id} node {node_id}: {len(arrivals)} calls, no run in the log")
            continue
        if len(arrivals) == 1:
            continue
        in_flight_at = [
            t
            for t in strikes
            if (arrivals[0] <= t or run.node_started_before(node_id, t))
            and not run.node_finished_before(node_id, t)
        ]
        allowed = 1 + len(in_flight_at)
        allowed_repeats += min(len(arrivals), allowed) - 1
        if len(arrivals) > allowed:
            redone.fail(
                f"run {run_id} node {node_id}: {len(arrivals)} calls at "
                f"{[round(a, 2) for a in arrivals]}, in flight at {len(in_flight_at)} faults"
            )
        finished_at = _first_node_finished(run, node_id)
        if finished_at is not None and any(a > finished_at for a in arrivals):
            after_finish.fail(
                f"run {run_id} node {node_id}: called at {[round(a, 2) for a in arrivals]}, "
                f"node_finished stored at {finished_at:.2f}"
            )
    totals = {
        "calls": sum(len(a) for a in by_node.values()),
        "node_executions": len(by_node),
        "repeats_in_flight_at_a_fault": allowed_repeats,
    }
    return {
        "finished_nodes_executed_twice": redone,
        "called_after_node_finished_stored": after_finish,
        "calls_for_unknown_runs": unknown,
    }, totals


def _first_node_finished(run: RunLog, node_id: str) -> float | None:
    finishes = run.node_finishes(node_id)
    return finishes[0].stored_at if finishes else None


def ghosts(records: list[ClientRecord], log: EventLog) -> dict[str, Check]:
    several, unknown = Check(), Check()
    known: set[str] = set()
    for record in records:
        ids = client_run_ids(record)
        known |= ids
        if len(ids) > 1:
            several.fail(f"key {record.key}: runs {sorted(ids)}")
    for run in log.runs.values():
        if run.events and run.run_id not in known:
            unknown.fail(f"run {run.run_id}: in the log, no client was answered it")
    # A ghost is a second run for one key, or a run nobody asked for (a refused submission
    # that executed anyway).
    return {"runs_per_key_above_one": several, "runs_no_client_knows": unknown}


def client_streams(records: list[ClientRecord]) -> dict[str, Check]:
    unfinished, gapped, duplicated = Check(), Check(), Check()
    for record in records:
        follower = record.follower
        if follower.finished is None:
            unfinished.fail(
                f"key {record.key} ({record.transport}) run {follower.run_id}: {record.gave_up}; "
                f"last seq {follower.last_seq}; last error {record.refusals[-1:]}"
            )
        if follower.gaps:
            gapped.fail(
                f"run {follower.run_id} ({record.transport}): skipped (expected, got) "
                f"{follower.gaps[:5]}"
            )
        if follower.duplicates:
            duplicated.fail(
                f"run {follower.run_id} ({record.transport}): delivered again after resume: "
                f"seqs {follower.duplicates[:10]}"
            )
    return {
        "clients_without_terminal_event": unfinished,
        "client_gaps": gapped,
        "client_duplicates": duplicated,
    }


def history_records(comparisons: list[HistoryComparison]) -> dict[str, Check]:
    check = Check()
    for comparison in comparisons:
        if comparison.problem is not None:
            check.fail(f"run {comparison.run_id}: {comparison.problem}")
    return {"history_mismatches": check}


def read_after_finish(records: list[ClientRecord]) -> tuple[dict[str, Check], dict[str, Any]]:
    per_endpoint = {endpoint: Check() for endpoint in ENDPOINTS}
    checks = 0
    stale_runs = 0
    for record in records:
        if record.read is None:
            continue
        checks += 1
        if not record.read.ok:
            stale_runs += 1
        for endpoint, answer in record.read.stale.items():
            per_endpoint[endpoint].fail(f"run {record.run_id}: {answer}")
    figures = {"checks": checks, "checks_with_a_stale_read": stale_runs}
    return {f"stale_{name}": check for name, check in per_endpoint.items()}, figures


def _gone_engines(log: EventLog, fault: FaultRecord) -> set[str]:
    """Engine attempts' ids that claimed runs before the fault and never once it was over:
    the engine that went away (a restarted engine has a new id; a stopping one may still
    claim a run in its last moments)."""
    over = fault.restored_at or fault.at
    before: set[str] = set()
    after: set[str] = set()
    for run in log.runs.values():
        for claim in run.claims:
            if claim.stored_at <= fault.at:
                before.add(claim.engine)
            elif claim.stored_at > over:
                after.add(claim.engine)
    return before - after


def recovery(log: EventLog, faults: list[FaultRecord]) -> dict[str, Any]:
    """After each fault: how long runs in progress waited for their next stored event. For an
    engine fault, only the runs that engine held (its claim was their latest)."""
    by_kind: defaultdict[str, list[float]] = defaultdict(list)
    in_progress: Counter[str] = Counter()
    not_resumed: Counter[str] = Counter()
    for index, fault in enumerate(faults):
        next_fault = faults[index + 1].at if index + 1 < len(faults) else float("inf")
        gone = _gone_engines(log, fault) if fault.kind.startswith("engine") else set()
        for run in log.runs.values():
            before = [e for e in run.events if e.stored_at <= fault.at]
            if not before or before[-1].event == "workflow_finished":
                continue
            if fault.kind.startswith("engine"):
                claims = [c for c in run.claims if c.stored_at <= fault.at]
                if not claims or claims[-1].engine not in gone:
                    continue
            in_progress[fault.kind] += 1
            following = run.first_event_after(fault.at)
            if following is not None and following.stored_at < next_fault:
                by_kind[fault.kind].append(following.stored_at - fault.at)
            else:
                not_resumed[fault.kind] += 1
    return {
        kind: {
            **_percentiles(by_kind[kind]),
            "runs_in_progress": in_progress[kind],
            "no_event_before_next_fault": not_resumed[kind],
        }
        for kind in in_progress
    }
