"""The Python client's stream handling over a scripted transport (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flowstream_client import FlowstreamClient, FlowstreamError, ResumePolicy
from flowstream_client.cli.inputs import InputParseError, parse_inputs

from tests.support import GREET

RUN = "run-1"


def event(seq: int, name: str, **data: Any) -> dict[str, Any]:
    return {"event": name, "workflow_run_id": RUN, "task_id": "t", "data": data, "seq": seq}


EVENTS = [
    event(1, "workflow_started", id=RUN),
    event(2, "node_started", node_id="greet", node_type="TEMPLATE", title="Greet"),
    event(3, "text_chunk", text="Hello ", from_variable_selector=["greet", "text"]),
    event(4, "text_chunk", text="Ada!", from_variable_selector=["greet", "text"]),
    event(5, "workflow_finished", status="succeeded", outputs={"answer": "Hello Ada!"}),
]


def frame(payload: dict[str, Any]) -> bytes:
    return f"id: {100 + payload['seq']}\ndata: {json.dumps(payload)}\n\n".encode()


class Cut(httpx.SyncByteStream):
    """Sends `body`, then fails like a connection reset mid-stream."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self._body
        raise httpx.ReadError("connection reset")


def sse(body: bytes | httpx.SyncByteStream) -> httpx.Response:
    headers = {"content-type": "text/event-stream"}
    if isinstance(body, bytes):
        return httpx.Response(200, headers=headers, content=body)
    return httpx.Response(200, headers=headers, stream=body)


Handler = Callable[[httpx.Request], httpx.Response]


def client_with(handler: Handler) -> FlowstreamClient:
    return FlowstreamClient(
        "http://gateway", "tok", transport=httpx.MockTransport(handler),
        resume=ResumePolicy(initial_delay_s=0.01, max_attempts=3),
    )  # fmt: skip


def test_a_dropped_stream_resumes_after_the_last_whole_frame_without_repeats() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            # Two whole frames and half of the third, then the connection dies.
            return sse(Cut(frame(EVENTS[0]) + frame(EVENTS[1]) + frame(EVENTS[2])[:15]))
        # The replay repeats event 2: deduplicated by seq.
        return sse(b"".join(frame(e) for e in EVENTS[1:]) + b"data: [DONE]\n\n")

    with client_with(handler) as client:
        events = list(client.stream("wf", {"name": "Ada"}))

    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[-1].data["outputs"] == {"answer": "Hello Ada!"}
    attach = seen[1]
    assert attach.url.path == f"/api/executions/{RUN}/events"
    assert attach.headers["last-event-id"] == "102"
    assert attach.headers["authorization"] == "Bearer tok"
    assert json.loads(seen[0].content)["on_disconnect"] == "continue"


def test_the_servers_resume_frame_names_where_and_from_which_cursor() -> None:
    seen: list[httpx.Request] = []
    where = {"url": f"/api/executions/{RUN}/events", "last_event_id": "cursor-9"}
    hint = {"event": "resume", "workflow_run_id": RUN, "task_id": "t", "data": where}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            body = (
                frame(EVENTS[0]) + b"retry: 20\nevent: resume\ndata: " + json.dumps(hint).encode()
            )
            return sse(body + b"\n\n")
        return sse(b"".join(frame(e) for e in EVENTS[1:]) + b"data: [DONE]\n\n")

    with client_with(handler) as client:
        events = list(client.stream("wf", {}))

    assert [e.event for e in events].count("resume") == 0
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert seen[1].headers["last-event-id"] == "cursor-9"


def test_a_refused_run_raises_the_api_error_and_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"code": "invalid_param", "message": "name is required in input form", "status": 400}
        return httpx.Response(400, json=body)

    with client_with(handler) as client, pytest.raises(FlowstreamError) as caught:
        list(client.stream("wf", {}))

    assert (caught.value.code, caught.value.status) == ("invalid_param", 400)
    assert len(calls) == 1


def test_resuming_gives_up_after_the_policys_attempts() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "POST":
            return sse(frame(EVENTS[0]))
        return httpx.Response(
            503, json={"code": "service_unavailable", "message": "x", "status": 503}
        )

    with client_with(handler) as client, pytest.raises(FlowstreamError) as caught:
        list(client.stream("wf", {}))

    assert caught.value.code == "stream_dropped"
    assert calls == ["POST", "GET", "GET", "GET"]


def test_inputs_are_typed_by_the_start_nodes_declarations() -> None:
    definition = {
        "nodes": [
            {"id": "start", "type": "START", "config": {"inputs": [
                {"name": "score", "type": "number"}, {"name": "verified", "type": "boolean"},
                {"name": "tags", "type": "array"}, {"name": "name", "type": "string"},
            ]}}
        ]
    }  # fmt: skip
    parsed = parse_inputs(
        ["score=75", "verified=yes", "tags=[1, 2]", "name=007", "extra=x"], definition
    )
    assert parsed == {"score": 75, "verified": True, "tags": [1, 2], "name": "007", "extra": "x"}
    assert parse_inputs(["score=7.5"], definition) == {"score": 7.5}
    with pytest.raises(InputParseError, match="score must be a number"):
        parse_inputs(["score=many"], definition)
    with pytest.raises(InputParseError, match="name=value"):
        parse_inputs(["name"], GREET)
