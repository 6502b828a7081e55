"""API_CALL through an httpx mock transport: requests built, responses mapped, failures named.

Real HTTP on loopback is covered by tests/integration/test_nodes_http.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from flowstream_engine.control import ControlRegistry
from flowstream_engine.http import shared_client
from flowstream_engine.plan import plan_for
from flowstream_engine.run import RunExecutor
from flowstream_shared.events import EventName, NodeFinishedData, NodeRetry, NodeStatus, RunStatus
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import Spec, api_call, chain, definition, end, field, start
from tests.unit.runs import (
    PATIENCE,
    Run,
    command_for,
    finished_nodes,
    node_started,
    of_type,
    run_of,
)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._handler(request)


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Handler], tuple[httpx.AsyncClient, Recorder]]]:
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler) -> tuple[httpx.AsyncClient, Recorder]:
        recorder = Recorder(handler)
        client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:
        await client.aclose()


def calling(*calls: Spec, answer: str = "{{call.status_code}}") -> WorkflowDefinition:
    ids = [c["id"] for c in calls]
    return definition(
        [
            start(field("name"), field("token"), field("url"), field("payload", "object")),
            *calls,
            end(answer=answer),
        ],
        chain("start", *ids, "end"),
    )


def run_with(
    client: httpx.AsyncClient, workflow: WorkflowDefinition, inputs: dict[str, Any]
) -> Run:
    return run_of(workflow, inputs, http=client)


def call_of(run: Run, node_id: str = "call") -> NodeFinishedData:
    return finished_nodes(run.log.events)[node_id]


async def test_a_get_renders_url_query_and_headers_and_maps_the_json(client_for: Any) -> None:
    client, recorder = client_for(
        lambda r: httpx.Response(200, json={"user": {"name": "Ada", "id": 7}})
    )
    workflow = calling(
        api_call(
            "call",
            "https://api.test/users/{{input.name}}",
            headers={"Authorization": "Bearer {{input.token}}", "X-Trace": "t-1"},
            query={"verbose": True, "n": 2, "who": "{{input.name}}"},
            outputs={
                "name": "{{response.body.user.name}}",
                "ok": "{{response.status_code == 200}}",
            },
        ),
        answer="{{call.name}}",
    )
    validate_definition(workflow)
    run = run_with(client, workflow, {"name": "ada", "token": "s3cret"})

    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert finished.outputs == {"answer": "Ada"}
    request = recorder.requests[0]
    assert request.method == "GET"
    assert request.url.path == "/users/ada"
    assert dict(request.url.params) == {"verbose": "true", "n": "2", "who": "ada"}
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-trace"] == "t-1"
    node = call_of(run)
    assert node.outputs is not None
    assert node.outputs["status_code"] == 200
    assert node.outputs["body"] == {"user": {"name": "Ada", "id": 7}}
    assert node.outputs["headers"]["content-type"] == "application/json"
    assert node.outputs["name"] == "Ada"
    assert node.outputs["ok"] is True
    assert node.inputs is not None
    assert node.inputs["headers"]["Authorization"] == "***"  # secrets stay out of events


async def test_a_json_body_keeps_the_types_of_single_references(client_for: Any) -> None:
    client, recorder = client_for(lambda r: httpx.Response(201, text="created"))
    workflow = calling(
        api_call(
            "call",
            "https://api.test/items",
            method="POST",
            body={"item": "{{input.payload}}", "label": "for {{input.name}}", "n": 1},
        ),
        answer="{{call.body}}",
    )
    run = run_with(client, workflow, {"name": "Ada", "payload": {"a": [1, 2]}})

    finished = await run.execute()

    assert finished.outputs == {"answer": "created"}
    request = recorder.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "item": {"a": [1, 2]},
        "label": "for Ada",
        "n": 1,
    }


@pytest.mark.parametrize(
    ("body", "body_type", "content_type", "content"),
    [
        ("hello {{input.name}}", None, "text/plain; charset=utf-8", b"hello Ada"),
        ({"who": "{{input.name}}"}, "form", "application/x-www-form-urlencoded", b"who=Ada"),
        ("{{input.name}}", "json", "application/json", b'"Ada"'),
    ],
)
async def test_text_form_and_json_bodies(
    client_for: Any, body: Any, body_type: str | None, content_type: str, content: bytes
) -> None:
    client, recorder = client_for(lambda r: httpx.Response(204))
    config: dict[str, Any] = {"method": "PUT", "body": body}
    if body_type:
        config["body_type"] = body_type
    run = run_with(
        client, calling(api_call("call", "https://api.test/x", **config)), {"name": "Ada"}
    )

    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert recorder.requests[0].headers["content-type"] == content_type
    assert recorder.requests[0].content.replace(b" ", b"") == content.replace(b" ", b"")
    assert call_of(run).outputs == {"status_code": 204, "headers": {}, "body": None}


async def test_a_non_2xx_answer_fails_the_node_with_status_and_excerpt(client_for: Any) -> None:
    client, _ = client_for(
        lambda r: httpx.Response(404, json={"detail": "no such user " + "x" * 500})
    )
    run = run_with(client, calling(api_call("call", "https://api.test/users/1?key=secret")), {})

    finished = await run.execute()

    node = call_of(run)
    assert node.status == NodeStatus.FAILED
    assert node.error is not None
    assert node.error.startswith(
        'GET https://api.test/users/1 answered HTTP 404: {"detail": "no such user'
    )
    assert "secret" not in node.error
    assert node.error.endswith("…")
    assert finished.status == RunStatus.FAILED
    assert finished.error == node.error


async def test_a_header_value_rendering_a_line_break_fails_the_node(client_for: Any) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200))
    workflow = calling(api_call("call", "https://api.test/", headers={"X-Name": "{{input.name}}"}))
    validate_definition(workflow)  # nothing to see at write time: it comes from the input
    run = run_with(client, workflow, {"name": "Ada\r\nX-Admin: true"})

    finished = await run.execute()

    node = call_of(run)
    assert node.status == NodeStatus.FAILED
    assert node.error is not None
    assert "header injection" in node.error
    assert recorder.requests == []
    assert finished.status == RunStatus.FAILED


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://files.test/x", "javascript:alert(1)", "/relative"]
)
async def test_a_url_that_is_not_http_fails_the_node(client_for: Any, url: str) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200))
    workflow = calling(api_call("call", "{{input.url}}"))
    validate_definition(workflow)
    run = run_with(client, workflow, {"url": url})

    await run.execute()

    node = call_of(run)
    assert node.status == NodeStatus.FAILED
    assert node.error is not None
    assert "http or https" in node.error
    assert recorder.requests == []


async def test_a_transport_timeout_fails_the_node(client_for: Any) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client, _ = client_for(hang)
    run = run_with(client, calling(api_call("call", "https://api.test/slow", timeout=1.5)), {})

    await run.execute()

    assert call_of(run).error == "GET https://api.test/slow: no response within 1.5s"


async def test_a_connection_error_fails_the_node(client_for: Any) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client, _ = client_for(refuse)
    run = run_with(client, calling(api_call("call", "https://api.test/")), {})

    await run.execute()

    assert call_of(run).error == "GET https://api.test/: ConnectError: connection refused"


async def test_retries_until_the_server_recovers(client_for: Any) -> None:
    answers = iter(
        [httpx.Response(503, text="busy"), httpx.Response(502), httpx.Response(200, text="ok")]
    )
    client, recorder = client_for(lambda r: next(answers))
    call = api_call("call", "https://api.test/", retry={"max_attempts": 3, "backoff": 0})
    run = run_with(client, calling(call, answer="{{call.body}}"), {})

    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "ok"}
    assert len(recorder.requests) == 3
    retries = of_type(run.log.events, NodeRetry)
    assert [r.data.retry_index for r in retries] == [1, 2]
    assert retries[0].data.error == "GET https://api.test/ answered HTTP 503: busy"


async def test_a_response_too_big_fails_the_node(client_for: Any) -> None:
    client, _ = client_for(lambda r: httpx.Response(200, content=b"x" * 1_100_000))
    run = run_with(client, calling(api_call("call", "https://api.test/big")), {})

    await run.execute()

    assert "larger than" in (call_of(run).error or "")


async def test_on_error_continue_keeps_the_run_going(client_for: Any) -> None:
    client, _ = client_for(lambda r: httpx.Response(500, text="boom"))
    call = api_call("call", "https://api.test/", on_error="continue")
    run = run_with(client, calling(call, answer="{{call.error}}"), {})

    finished = await run.execute()

    assert finished.status == RunStatus.PARTIAL_SUCCEEDED
    assert finished.outputs == {"answer": "GET https://api.test/ answered HTTP 500: boom"}


async def test_every_node_of_every_run_uses_the_executor_client(client_for: Any) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, text=r.url.path))
    workflow = calling(
        api_call("first", "https://api.test/1"),
        api_call("second", "https://api.test/2"),
        answer="{{first.body}}{{second.body}}",
    )

    for _ in range(2):
        finished = await run_with(client, workflow, {}).execute()
        assert finished.outputs == {"answer": "/1/2"}

    assert [r.url.path for r in recorder.requests] == ["/1", "/2", "/1", "/2"]


def test_without_a_client_the_executor_uses_the_process_client() -> None:
    command = command_for(calling(api_call("call", "https://api.test/")), {})

    executor = RunExecutor(command, plan_for(command.workflow), None)  # type: ignore[arg-type]

    assert executor.http is shared_client()
    assert shared_client() is shared_client()


async def test_a_draining_engine_starts_no_call_and_leaves_the_run_unfinished(
    client_for: Any,
) -> None:
    # SIGTERM drains the registry before the broker cancels the runs: a call that would start
    # in between must wait for that cancellation, or the engine resuming the run repeats it.
    called = asyncio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        called.set()
        return httpx.Response(200, text="ok")

    client, recorder = client_for(answer)
    run = run_with(client, calling(api_call("call", "https://api.test/hook")), {})
    registry = ControlRegistry()
    registry.register(run.command.run_id, run.executor)
    registry.drain()
    call_started = run.log.seen(node_started("call"))

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await call_started.wait()
    with pytest.raises(TimeoutError):  # undrained, the call is made within microseconds
        await asyncio.wait_for(called.wait(), 0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert recorder.requests == []
    assert not [e for e in run.log.events if e.event == EventName.WORKFLOW_FINISHED]
