"""One scenario from start to figures: the stack, the load with its faults, the settling, the
evidence gathered (log, peer, history) and the checks over it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from chaos import checks
from chaos.cluster import Topology
from chaos.eventlog import EventLog, read_log
from chaos.faults import FaultRecord, inject
from chaos.load import ClientRecord, LoadTarget, run_clients, summary_of
from chaos.processes import Stack, log
from chaos.reads import HistoryComparison, compare_with_log
from chaos.scenarios import Scenario
from chaos.settings import ChaosSettings
from chaos.workflow import chaos_workflow

SETTLE_POLL_S = 3.0


async def run_scenario(
    scenario: Scenario, settings: ChaosSettings, work_dir: Path
) -> dict[str, Any]:
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    topology = Topology.cluster(work_dir) if scenario.cluster else Topology.single(work_dir)
    stack = Stack(topology, work_dir, user=f"chaos-{scenario.name}")
    started = time.monotonic()
    try:
        await stack.start_nats()
        if scenario.ferretdb:
            await stack.start_ferretdb()
        await stack.start_services(scenario.engines, scenario.gateways)
        log(f"{scenario.name}: stack up in {time.monotonic() - started:.1f} s ({work_dir})")
        return await _load_and_check(scenario, settings, stack)
    finally:
        await stack.stop()
        log(f"{scenario.name}: done in {time.monotonic() - started:.1f} s")


async def _load_and_check(
    scenario: Scenario, settings: ChaosSettings, stack: Stack
) -> dict[str, Any]:
    async with stack.client(stack.gateway_urls[0]) as client:
        created = await client.post(
            "/api/workflows", json=chaos_workflow(stack.peer_url, settings.call_ms)
        )
        created.raise_for_status()
        workflow_id = str(created.json()["id"])
    target = LoadTarget(
        gateway_urls=lambda: stack.gateway_urls,
        token=stack.token,
        workflow_id=workflow_id,
        client_for=stack.client,
    )
    load_done = asyncio.Event()
    injector = asyncio.create_task(
        inject(
            stack, [] if settings.no_faults else list(scenario.faults), scenario.every_s, load_done
        )
    )
    load_started = time.monotonic()
    records = await run_clients(
        target, settings.runs, settings.concurrency, settings.run_patience_s, settings.load_limit_s
    )
    load_seconds = time.monotonic() - load_started
    load_done.set()
    faults = await injector
    log(f"{scenario.name}: {len(records)} clients in {load_seconds:.1f} s, {len(faults)} faults")

    nc = await stack.connect()
    try:
        event_log = await _settled_log(nc_read=lambda: read_log(nc), patience_s=settings.settle_s)
    finally:
        await nc.close()
    async with httpx.AsyncClient(base_url=stack.peer_url, trust_env=False, timeout=30) as peer:
        calls = [tuple(call) for call in (await peer.get("/calls")).json()]
    async with stack.client(stack.gateway_urls[0]) as client:
        comparisons = await _history_against_log(client, event_log, settings.settle_s)
    return _figures(
        scenario, settings, records, event_log, calls, faults, comparisons, load_seconds
    )


async def _settled_log(nc_read: Any, patience_s: float) -> EventLog:
    """The log once every run in it has ended, or as it is after `patience_s`."""
    give_up_at = time.monotonic() + patience_s
    while True:
        event_log: EventLog = await nc_read()
        unfinished = [r for r in event_log.runs.values() if r.events and not r.finished]
        if not unfinished or time.monotonic() > give_up_at:
            return event_log
        await asyncio.sleep(SETTLE_POLL_S)


async def _history_against_log(
    client: httpx.AsyncClient, event_log: EventLog, patience_s: float
) -> list[HistoryComparison]:
    """Every ended run's record against its log; records that lag get until `patience_s`."""
    expected = {}
    for run in event_log.runs.values():
        if run.finished:
            data = run.finished[-1].body["data"]
            expected[run.run_id] = (data.get("status"), data.get("outputs"), run.events[-1].seq)
    give_up_at = time.monotonic() + patience_s
    gate = asyncio.Semaphore(4)  # history answers reads one store query at a time
    results: dict[str, HistoryComparison] = {}
    pending = list(expected)

    async def compare(run_id: str) -> None:
        status, outputs, last_seq = expected[run_id]
        async with gate:
            results[run_id] = await compare_with_log(client, run_id, status, outputs, last_seq)

    try:
        async with asyncio.timeout(patience_s * 2):
            while pending:
                await asyncio.gather(*(compare(run_id) for run_id in pending))
                pending = [run_id for run_id in pending if results[run_id].problem is not None]
                if not pending or time.monotonic() > give_up_at:
                    break
                await asyncio.sleep(SETTLE_POLL_S)
    except TimeoutError:
        for run_id in expected:
            results.setdefault(
                run_id, HistoryComparison(run_id, "not read: history answered too slowly")
            )
    return list(results.values())


def _figures(
    scenario: Scenario,
    settings: ChaosSettings,
    records: list[ClientRecord],
    event_log: EventLog,
    calls: list[Any],
    faults: list[FaultRecord],
    comparisons: list[HistoryComparison],
    load_seconds: float,
) -> dict[str, Any]:
    found: dict[str, checks.Check] = {}
    found |= checks.lost_and_stuck(records, event_log)
    found |= checks.log_integrity(event_log)
    executions, execution_totals = checks.repeated_executions(calls, event_log, faults)
    found |= executions
    found |= checks.ghosts(records, event_log)
    found |= checks.client_streams(records)
    found |= checks.history_records(comparisons)
    stale, read_totals = checks.read_after_finish(records)
    found |= stale
    recovery = checks.recovery(event_log, faults)
    finished = sum(1 for run in event_log.runs.values() if run.finished)
    failed = sorted(name for name, check in found.items() if check.failures)
    statuses: dict[str, int] = {}
    for run in event_log.runs.values():
        for end in run.finished[:1]:
            status = str(end.body["data"].get("status"))
            statuses[status] = statuses.get(status, 0) + 1
    return {
        "description": scenario.description,
        "topology": scenario.topology,
        "store": scenario.store,
        "engines": scenario.engines,
        "gateways": scenario.gateways,
        "runs": len(records),
        "runs_in_log": sum(1 for run in event_log.runs.values() if run.events),
        "runs_finished": finished,
        "run_statuses": statuses,
        "load_seconds": round(load_seconds, 1),
        "runs_per_s": round(len(records) / load_seconds, 1) if load_seconds else None,
        "log_messages": event_log.messages,
        "faults": [fault.as_json() for fault in faults],
        "clients": summary_of(records),
        "executions": execution_totals,
        "read_after_finish": read_totals,
        "recovery": recovery,
        "checks": {name: check.as_json() for name, check in found.items()},
        "failed_checks": failed,
        "settings": {
            "concurrency": settings.concurrency,
            "call_ms": settings.call_ms,
            "faults": not settings.no_faults,
        },
    }
