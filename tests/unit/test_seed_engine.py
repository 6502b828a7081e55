"""The engine side of the seed forms: CONDITIONAL edges, registry APIs from the run's snapshot,
`response.<body field>`, custom metrics, and hooks that observe without ever breaking a run."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from flowstream_engine.credentials import CredentialResolver
from flowstream_engine.emitter import RunEmitter
from flowstream_engine.hooks import HOOK_CALLS, HOOK_FAILURES, Hook, HookSet, RunHooks
from flowstream_engine.metrics import EngineMetrics
from flowstream_engine.plan import plan_for
from flowstream_engine.run import RunExecutor
from flowstream_shared.apis import ApiSnapshot
from flowstream_shared.commands import RunCommand, WorkflowSnapshot
from flowstream_shared.events import (
    NodeFinished,
    NodeStatus,
    RunEventBase,
    RunStatus,
    WorkflowFinished,
    WorkflowStarted,
    WorkflowStartedData,
)
from flowstream_shared.workflow import WorkflowDefinition
from prometheus_client import generate_latest

from tests.credentials_support import MemoryCredentials
from tests.unit.builders import chain, definition, end, field, start, template
from tests.unit.runs import PATIENCE, MemoryEventLog, finished_nodes, run_of, started_ids


def conditional(source: str, target: str, condition: str) -> dict[str, Any]:
    return {"from": source, "to": target, "type": "CONDITIONAL", "condition": condition}


def routed() -> WorkflowDefinition:
    """start → big (amount > 100) / small (otherwise) → end."""
    return definition(
        [
            start(field("amount", "number")),
            template("big", "big"),
            template("small", "small"),
            end(amount="{{input.amount}}"),
        ],
        [
            conditional("start", "big", "{{input.amount}} > 100"),
            conditional("start", "small", "not ({{input.amount}} > 100)"),
            *chain("big", "end"),
            *chain("small", "end"),
        ],
    )


@pytest.mark.parametrize(("amount", "ran", "skipped"), [(150, "big", "small"), (5, "small", "big")])
async def test_a_conditional_edge_is_taken_when_its_condition_holds(
    amount: int, ran: str, skipped: str
) -> None:
    run = run_of(routed(), {"amount": amount})
    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED and finished.outputs == {"amount": amount}
    assert ran in started_ids(run.log.events) and skipped not in started_ids(run.log.events)


async def test_a_conditional_edge_that_cannot_be_evaluated_fails_the_run() -> None:
    workflow = definition(
        [start(field("name")), template("a", "x"), end()],
        [conditional("start", "a", "{{input.name}} > 3"), *chain("a", "end")],
    )
    run = run_of(workflow, {"name": "text"})
    finished = await run.execute()

    assert finished.status == RunStatus.FAILED
    assert finished.error is not None and "connection start → a" in finished.error
    assert "a" not in started_ids(run.log.events)


# Registry APIs


@pytest.fixture
async def mock_http() -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Request]]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"id": 42, "status": "success"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        yield client, seen


ORDERS = ApiSnapshot(
    id="api-orders",
    name="orders",
    base_url="https://orders.example.com/v1/",
    method="GET",
    path="/orders/{order_id}/lines/{line}",
    headers={"X-Client": "flowstream", "Accept": "application/json"},
    timeout=5,
)


def calling_api(config: dict[str, Any], apis: dict[str, ApiSnapshot]) -> RunCommand:
    workflow = definition(
        [
            start(field("order")),
            {"id": "fetch", "type": "API_CALL", "config": config},
            end(order_id="{{fetch.order_id}}", data="{{fetch.data}}"),
        ],
        chain("start", "fetch", "end"),
    )
    now = time.time()
    return RunCommand(
        run_id=str(uuid.uuid4()),
        task_id=str(uuid.uuid4()),
        workflow=WorkflowSnapshot(
            workflow_id=f"wf-{uuid.uuid4().hex}", version=1, definition=workflow, apis=apis
        ),
        inputs={"order": "A/7 b"},
        user_id="u",
        created_at=now,
        deadline=now + 30,
    )


async def execute(
    command: RunCommand, http: httpx.AsyncClient, credentials: CredentialResolver | None = None
) -> MemoryEventLog:
    log = MemoryEventLog()
    emitter = RunEmitter(log, command.run_id, command.task_id)
    executor = RunExecutor(
        command, plan_for(command.workflow), emitter, http=http, credentials=credentials
    )
    async with asyncio.timeout(PATIENCE):
        await executor.execute()
    return log


async def test_an_api_call_by_id_uses_the_snapshot_and_fills_the_path(
    mock_http: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, seen = mock_http
    config = {
        "api_id": "api-orders",
        "parameters": {"order_id": "{{input.order}}", "line": 3, "expand": "all"},
        "headers": {"X-Client": "node wins"},
        "output_mapping": {"order_id": "response.data.id"},
        "outputs": {"data": "{{response.data}}"},
    }
    log = await execute(calling_api(config, {"api-orders": ORDERS}), client)

    (request,) = seen
    assert request.method == "GET"
    # One encoded segment per parameter: a `/` in a value cannot reach another path.
    assert request.url.raw_path.split(b"?")[0] == b"/v1/orders/A%2F7%20b/lines/3"
    assert dict(request.url.params) == {"expand": "all"}  # the others: the query
    assert request.headers["x-client"] == "node wins"
    assert request.headers["accept"] == "application/json"
    finished = log.events[-1]
    assert isinstance(finished, WorkflowFinished) and finished.data.status == RunStatus.SUCCEEDED
    assert finished.data.outputs == {"order_id": 42, "data": {"id": 42, "status": "success"}}


async def test_an_api_missing_from_the_snapshot_fails_the_node(
    mock_http: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, seen = mock_http
    config = {"api_id": "gone", "parameters": {"order_id": "1", "line": 1}}
    log = await execute(calling_api(config, {}), client)

    node = finished_nodes(log.events)["fetch"]
    assert node.status == NodeStatus.FAILED and "API `gone`" in (node.error or "")
    assert seen == []


async def test_the_apis_credential_authenticates_the_call_and_stays_masked(
    mock_http: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, seen = mock_http
    stored = MemoryCredentials()
    stored.add("u", "orders-token", value="tok-481516")
    api = ORDERS.model_copy(update={"credential": "orders-token"})
    config = {"api_id": "api-orders", "parameters": {"order_id": "1", "line": 1}}
    log = await execute(calling_api(config, {"api-orders": api}), client, stored.resolver())

    (request,) = seen
    assert request.headers["authorization"] == "Bearer tok-481516"
    node = finished_nodes(log.events)["fetch"]
    assert node.status == NodeStatus.SUCCEEDED
    assert "tok-481516" not in json.dumps([e.model_dump(mode="json") for e in log.events])


async def test_an_apis_credential_that_does_not_exist_fails_the_node(
    mock_http: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, seen = mock_http
    api = ORDERS.model_copy(update={"credential": "missing"})
    config = {"api_id": "api-orders", "parameters": {"order_id": "1", "line": 1}}
    log = await execute(
        calling_api(config, {"api-orders": api}), client, MemoryCredentials().resolver()
    )

    node = finished_nodes(log.events)["fetch"]
    assert node.status == NodeStatus.FAILED and "'missing' does not exist" in (node.error or "")
    assert seen == []  # never sent without its credential


# Custom metrics


async def test_custom_metrics_go_to_the_node_finished_metadata() -> None:
    workflow = definition(
        [
            start(field("n", "number")),
            template(
                "count",
                "{{input.n}}",
                metrics={"rows": "{{count.text}}", "double": "{{input.n * 2}}", "bad": "x{{1}}"},
            ),
            end(),
        ],
        chain("start", "count", "end"),
    )
    run = run_of(workflow, {"n": 4})
    assert (await run.execute()).status == RunStatus.SUCCEEDED  # a bad metric fails nothing

    metadata = finished_nodes(run.log.events)["count"].execution_metadata or {}
    assert metadata["metrics"] == {"rows": 4.0, "double": 8.0}
    assert metadata["metrics_errors"] == {"bad": "not a number: 'x1'"}


# Hooks


class Recording:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.done = asyncio.Event()

    async def before_execution(self, event: RunEventBase) -> None:
        assert isinstance(event, WorkflowStarted)
        self.seen.append(("before", event.workflow_run_id))

    async def on_node_execution(self, event: RunEventBase) -> None:
        assert isinstance(event, NodeFinished)
        self.seen.append(("node", event.data.node_id))

    async def after_execution(self, event: RunEventBase) -> None:
        assert isinstance(event, WorkflowFinished)
        self.seen.append(("after", event.data.status.value))
        self.done.set()


class Gate:
    """Holds the run's hook queue until the test lets it go."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def before_execution(self, event: RunEventBase) -> None:
        await self.release.wait()


class Failing:
    async def before_execution(self, event: RunEventBase) -> None:
        raise RuntimeError("this hook is broken")

    async def on_node_execution(self, event: RunEventBase) -> None:
        await asyncio.Event().wait()  # never returns: the timeout ends it


def hook_set(timeout_s: float, *plugins: tuple[str, Any]) -> HookSet:
    hooks = HookSet(timeout_s=timeout_s)
    for name, plugin in plugins:
        for function in ("before_execution", "on_node_execution", "after_execution"):
            if hasattr(plugin, function):
                hooks.by_name.setdefault(function, []).append(Hook(name, getattr(plugin, function)))
    return hooks


def _counter(counter: Any, **labels: str) -> float:
    value: float = counter.labels(**labels)._value.get()
    return value


def three_nodes() -> WorkflowDefinition:
    return definition([start(), template("t", "x"), end()], chain("start", "t", "end"))


async def test_hooks_see_the_run_in_order_without_the_run_waiting_on_them() -> None:
    gate, recording = Gate(), Recording()
    run = run_of(three_nodes(), {})
    run.executor.hooks = RunHooks(hook_set(PATIENCE, ("gate", gate), ("recording", recording)))

    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert recording.seen == []  # the run ended while its first hook call still waited
    gate.release.set()
    async with asyncio.timeout(PATIENCE):
        await recording.done.wait()
    assert recording.seen == [
        ("before", run.command.run_id),
        ("node", "start"),
        ("node", "t"),
        ("node", "end"),
        ("after", "succeeded"),
    ]


async def test_a_failing_or_slow_hook_is_counted_and_breaks_nothing() -> None:
    recording = Recording()
    run = run_of(three_nodes(), {})
    run.executor.hooks = RunHooks(hook_set(0.05, ("failing", Failing()), ("recording", recording)))
    errors_before = _counter(HOOK_FAILURES, hook="before_execution", reason="error")
    timeouts_before = _counter(HOOK_FAILURES, hook="on_node_execution", reason="timeout")

    assert (await run.execute()).status == RunStatus.SUCCEEDED
    async with asyncio.timeout(PATIENCE):
        await recording.done.wait()  # the calls after each failing one still happened

    assert len(recording.seen) == 5
    assert _counter(HOOK_FAILURES, hook="before_execution", reason="error") == errors_before + 1
    assert (
        _counter(HOOK_FAILURES, hook="on_node_execution", reason="timeout") == timeouts_before + 3
    )


def test_hook_counters_are_on_the_engine_metrics() -> None:
    HOOK_CALLS.labels("after_execution").inc(0)
    exposed = generate_latest(EngineMetrics().registry).decode()
    assert "flowstream_engine_hook_calls_total" in exposed
    assert "flowstream_engine_hook_failures_total" in exposed


def test_no_hooks_costs_nothing() -> None:
    assert not HookSet()
    # Without hooks nothing is queued or scheduled (no event loop is even needed).
    RunHooks(HookSet()).notify(
        WorkflowStarted(
            workflow_run_id="r",
            task_id="t",
            seq=1,
            data=WorkflowStartedData(
                id="r", workflow_id="w", workflow_version=1, inputs={}, created_at=0
            ),
        )
    )
