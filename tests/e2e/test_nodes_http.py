"""API_CALL and LLM nodes over the whole stack, against real HTTP peers the tests start.

Definitions go in through `POST /api/workflows`, runs through `POST /api/workflow/{id}/execute`;
the engine process calls the peers (tests/e2e/peers.py) on 127.0.0.1. Every test waits on what
it can observe (SSE events, the event log, a peer's events), never on time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.peers import Peer, answer_pieces, chat_peer, http_peer, usage_for
from tests.support import read_run_log, sse_frames
from tests.unit.builders import Spec, api_call, chain, end, field, llm, start, template

pytestmark = pytest.mark.e2e

USER = "nodes-http"
Event = dict[str, Any]


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


@pytest.fixture(scope="module")
async def chat() -> AsyncIterator[Peer]:
    async with chat_peer() as serving:
        yield serving


def key() -> str:
    """A fresh path segment, so tests sharing a peer never read each other's requests."""
    return uuid.uuid4().hex[:12]


# Running workflows over the stack (also used by test_nodes_flow.py)


def workflow(nodes: list[Spec], connections: list[Spec], **extra: Any) -> Spec:
    return {"name": f"nodes-{key()}", "nodes": nodes, "connections": connections, **extra}


def one_call(call: Spec, *inputs: Spec, **outputs: str) -> Spec:
    """START → the API_CALL or LLM node → END."""
    return workflow(
        [start(*inputs), call, end(**(outputs or {"done": "yes"}))],
        chain("start", call["id"], "end"),
    )


async def stream_run(
    stack: Stack, workflow_id: str, inputs: dict[str, Any], user: str = USER
) -> list[Event]:
    """Execute in streaming mode and read the stream to its end: every event, then [DONE]."""
    async with (
        stack.client(user) as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": inputs}
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        frames = [frame async for frame in sse_frames(response)]
    assert frames[-1].data == "[DONE]"
    return checked([frame.json() for frame in frames[:-1]])


async def run(
    stack: Stack, definition: Spec, inputs: dict[str, Any] | None = None, user: str = USER
) -> list[Event]:
    workflow_id = await stack.create_workflow(user, definition)
    return await stream_run(stack, workflow_id, inputs or {}, user)


def checked(events: list[Event]) -> list[Event]:
    """Gap-free `seq` from 1, exactly one `workflow_finished`, and it is the last event."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["event"] for e in events].count("workflow_finished") == 1
    assert events[-1]["event"] == "workflow_finished"
    return events


def finish(events: list[Event]) -> dict[str, Any]:
    data: dict[str, Any] = events[-1]["data"]
    return data


def finished(events: list[Event], node_id: str) -> dict[str, Any]:
    """The data of the node's one `node_finished`."""
    found: list[dict[str, Any]] = [
        e["data"]
        for e in events
        if e["event"] == "node_finished" and e["data"]["node_id"] == node_id
    ]
    assert len(found) == 1, f"{node_id} finished {len(found)} times"
    return found[0]


def started_nodes(events: list[Event]) -> list[str]:
    return [e["data"]["node_id"] for e in events if e["event"] == "node_started"]


def of(events: list[Event], name: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["event"] == name]


def position(events: list[Event], name: str, node_id: str | None = None) -> int:
    """Index of the first `name` event (of `node_id`, when given)."""
    for index, event in enumerate(events):
        if event["event"] == name and (node_id is None or event["data"].get("node_id") == node_id):
            return index
    raise AssertionError(f"no {name} for {node_id}")


# API_CALL: requests, responses, output mapping


async def test_a_get_renders_url_headers_and_query_and_maps_a_json_answer(
    stack: Stack, peer: Peer
) -> None:
    call = api_call(
        "call",
        f"{peer.url}/users/{{{{input.uid}}}}",
        headers={
            "Authorization": "Bearer {{input.token}}",
            "X-Trace": "run-{{execution.id}}",
        },
        query={"fields": "{{input.fields}}", "limit": 5, "verbose": True},
        outputs={"name": "{{response.body.user.name}}", "code": "{{response.status_code}}"},
    )
    uid = f"u-{key()}"
    inputs = {"uid": uid, "token": "s3cret", "fields": "name,roles"}
    events = await run(
        stack,
        one_call(
            call,
            field("uid"),
            field("token"),
            field("fields"),
            answer="{{call.name}} ({{call.code}})",
        ),
        inputs,
    )

    assert finish(events)["status"] == "succeeded", finish(events)["error"]
    assert finish(events)["outputs"] == {"answer": "Ada Lovelace (200)"}
    (seen,) = peer.received(f"/users/{uid}")
    assert seen.method == "GET"
    assert seen.query == {"fields": "name,roles", "limit": "5", "verbose": "true"}
    assert seen.headers["authorization"] == "Bearer s3cret"
    assert seen.headers["x-trace"] == f"run-{events[0]['workflow_run_id']}"
    assert seen.body == b""

    node = finished(events, "call")
    assert node["status"] == "succeeded"
    assert node["outputs"]["status_code"] == 200
    assert node["outputs"]["headers"]["content-type"] == "application/json"
    assert node["outputs"]["body"]["user"]["id"] == uid  # parsed JSON
    assert node["outputs"]["name"] == "Ada Lovelace"
    assert node["outputs"]["code"] == 200  # one reference keeps the value's type
    # What was sent is in the node's inputs, secrets masked.
    assert node["inputs"]["method"] == "GET"
    assert node["inputs"]["url"] == f"{peer.url}/users/{uid}"
    assert node["inputs"]["headers"] == {
        "Authorization": "***",
        "X-Trace": f"run-{events[0]['workflow_run_id']}",
    }


async def test_a_post_sends_a_typed_json_body_and_blocking_mode_answers_the_outputs(
    stack: Stack, peer: Peer
) -> None:
    path = f"/echo/{key()}"
    call = api_call(
        "call",
        f"{peer.url}{path}",
        method="POST",
        headers={"X-User": "{{input.name}}"},
        query={"dry_run": "{{input.dry}}"},
        body={"profile": "{{input.profile}}", "note": "hi {{input.name}}", "count": 3},
        outputs={"echoed": "{{response.body.json}}", "method": "{{response.body.method}}"},
    )
    definition = one_call(
        call,
        field("name"),
        field("profile", "object"),
        field("dry", "boolean"),
        method="{{call.method}}",
        echoed="{{call.echoed}}",
    )
    workflow_id = await stack.create_workflow(USER, definition)
    profile = {"age": 36, "tags": ["math", "poetry"]}
    async with stack.client(USER) as client:
        response = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={
                "inputs": {"name": "Ada", "profile": profile, "dry": False},
                "response_mode": "blocking",
            },
        )
    assert response.status_code == 200, response.text
    result = response.json()
    sent = {"profile": profile, "note": "hi Ada", "count": 3}
    assert result["data"]["status"] == "succeeded", result["data"]["error"]
    assert result["data"]["outputs"] == {"method": "POST", "echoed": sent}

    (seen,) = peer.received(path)
    assert seen.method == "POST"
    assert seen.json() == sent  # the object input went as an object, not as text
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-user"] == "Ada"
    assert seen.query == {"dry_run": "false"}
    # The event log holds the same run, node by node.
    events = checked(await read_run_log(stack.nats_url, result["workflow_run_id"]))
    assert finished(events, "call")["inputs"]["body"] == sent


async def test_a_text_answer_and_a_text_body(stack: Stack, peer: Peer) -> None:
    path = f"/text/{key()}"
    call = api_call("call", f"{peer.url}{path}", method="PUT", body="line for {{input.name}}")
    events = await run(stack, one_call(call, field("name"), answer="{{call.body}}"), {"name": "Bo"})

    assert finish(events)["outputs"] == {"answer": "plain words"}
    node = finished(events, "call")
    assert node["outputs"]["body"] == "plain words"  # text, not parsed
    assert node["outputs"]["headers"]["content-type"].startswith("text/plain")
    (seen,) = peer.received(path)
    assert seen.method == "PUT"
    assert seen.text == "line for Bo"
    assert seen.headers["content-type"].startswith("text/plain")


# API_CALL: failures


async def test_a_non_2xx_answer_fails_the_node_with_the_status_and_an_excerpt(
    stack: Stack, peer: Peer
) -> None:
    url = f"{peer.url}/status/503/{key()}"
    events = await run(stack, one_call(api_call("call", f"{url}?page=2")))

    node = finished(events, "call")
    assert node["status"] == "failed"
    # Method, URL without its query, status, then the first 300 characters of the body.
    prefix = f"GET {url} answered HTTP 503: "
    assert node["error"].startswith(prefix + "status 503: detail detail")
    assert len(node["error"]) == len(prefix) + 300 + 1 and node["error"].endswith("…")
    assert finish(events)["status"] == "failed"
    assert "HTTP 503" in finish(events)["error"]
    assert "end" not in started_nodes(events)


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("request", "GET {url}: no response within 0.5s"),  # the API_CALL's own `timeout`
        ("node", "node timed out after 0.5s"),  # the `timeout` every node accepts
    ],
)
async def test_a_timeout_fails_the_node_and_aborts_the_request(
    stack: Stack, peer: Peer, where: str, error: str
) -> None:
    hold = key()
    url = f"{peer.url}/hold/{hold}"
    timeout = {"timeout": 0.5} if where == "request" else {"node_timeout": 0.5}
    events = await run(stack, one_call(api_call("call", url, **timeout)))

    node = finished(events, "call")
    assert node["status"] == "failed"
    assert node["error"] == error.format(url=url)
    assert finish(events)["status"] == "failed"
    assert peer.arrived[hold].is_set()
    await peer.gone.wait(hold)  # the engine closed the connection


async def test_retries_back_off_exponentially_until_the_peer_recovers(
    stack: Stack, peer: Peer
) -> None:
    path = f"/recovers/{key()}"
    call = api_call(
        "call",
        f"{peer.url}{path}",
        query={"after": 2},
        retry={"max_attempts": 3, "backoff": 0.25},
        outputs={"attempt": "{{response.body.attempt}}"},
    )
    events = await run(stack, one_call(call, attempt="{{call.attempt}}"))

    assert finish(events)["status"] == "succeeded", finish(events)["error"]
    assert finish(events)["outputs"] == {"attempt": 3}
    call_events = [
        (e["event"], e["data"].get("status"), e["data"].get("retry_index"))
        for e in events
        if e["data"].get("node_id") == "call"
    ]
    assert call_events == [
        ("node_started", None, None),
        ("node_retry", "retry", 1),
        ("node_retry", "retry", 2),
        ("node_finished", "succeeded", None),
    ]
    retries = of(events, "node_retry")
    for number, retry in enumerate(retries, start=1):
        assert retry["error"] == (
            f"GET {peer.url}{path} answered HTTP 503: not yet (attempt {number})"
        )
        assert retry["id"] == finished(events, "call")["id"]  # one node execution
    # The peer saw three attempts, the waits between them 0.25 s, then twice as long.
    arrivals = [r.at for r in peer.received(path)]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 0.25
    assert arrivals[2] - arrivals[1] >= 0.5


async def test_a_query_string_written_in_the_url_is_sent(stack: Stack, peer: Peer) -> None:
    path = f"/echo/{key()}"
    call = api_call("call", f"{peer.url}{path}?page=2&q={{{{input.q}}}}", query={"size": 10})
    await run(stack, one_call(call, field("q")), {"q": "ada"})

    (seen,) = peer.received(path)
    assert seen.query == {"page": "2", "q": "ada", "size": "10"}


async def test_a_header_rendered_with_cr_lf_fails_the_node_before_anything_is_sent(
    stack: Stack, peer: Peer
) -> None:
    path = f"/echo/{key()}"
    call = api_call("call", f"{peer.url}{path}", headers={"X-Note": "note: {{input.note}}"})
    events = await run(stack, one_call(call, field("note")), {"note": "hi\r\nX-Injected: yes"})

    node = finished(events, "call")
    assert node["status"] == "failed"
    assert node["error"] == (
        "header 'X-Note': the rendered value contains CR, LF or NUL (header injection)"
    )
    assert finish(events)["status"] == "failed"
    assert peer.received(path) == []


async def test_a_rendered_url_that_is_not_http_fails_the_node(stack: Stack) -> None:
    call = api_call("call", "{{input.target}}")
    events = await run(stack, one_call(call, field("target")), {"target": "file:///etc/passwd"})

    node = finished(events, "call")
    assert node["status"] == "failed"
    assert node["error"] == (
        "the URL scheme must be http or https, not 'file' ('file:///etc/passwd')"
    )


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"url": "ftp://127.0.0.1/file"}, "the URL scheme must be http or https, not 'ftp'"),
        ({"url": "gopher://127.0.0.1/{{input.name}}"}, "must be http or https, not 'gopher'"),
        ({"url": "api.example.com/users"}, "not an absolute http(s) URL"),
        ({"url": "localhost:8080/users"}, "must be http or https, not 'localhost'"),
        (
            {"url": "http://127.0.0.1/", "headers": {"X-Note": "a\r\nX-Injected: b"}},
            "config.headers.X-Note: a header value cannot contain CR, LF or NUL",
        ),
        (
            {"url": "http://127.0.0.1/", "headers": {"Bad Name": "x"}},
            "'Bad Name' is not a valid header name",
        ),
    ],
)
async def test_a_bad_literal_url_or_header_is_a_400_naming_the_node(
    stack: Stack, config: dict[str, Any], words: str
) -> None:
    definition = one_call(api_call("call", **config), field("name"))
    async with stack.client(USER) as client:
        response = await client.post("/api/workflows", json=definition)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_param" and body["status"] == 400
    assert body["message"].startswith("node `call`: ")
    assert words in body["message"]


# API_CALL: a stop while the request is in flight


async def test_a_stop_aborts_the_request_in_flight_and_the_run_ends_stopped(
    stack: Stack, peer: Peer
) -> None:
    hold = key()
    call = api_call("call", f"{peer.url}/hold/{hold}")
    definition = workflow(
        [start(), call, template("after", "never"), end(done="{{after.text}}")],
        chain("start", "call", "after", "end"),
    )
    workflow_id = await stack.create_workflow(USER, definition)
    async with (
        stack.client(USER) as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": {}}
        ) as response,
    ):
        frames = sse_frames(response)
        run_id = ""
        async for frame in frames:
            event = frame.json()
            run_id = event["workflow_run_id"]
            if event["event"] == "node_started" and event["data"]["node_id"] == "call":
                break
        await peer.arrived.wait(hold)  # the request is at the peer, unanswered
        stopped_at = time.monotonic()
        cancelled = await client.post(f"/api/executions/{run_id}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        await peer.gone.wait(hold)  # the engine aborted the request: the peer saw it go
        aborted_after = time.monotonic() - stopped_at
        rest = [frame async for frame in frames]

    assert rest[-1].data == "[DONE]"
    events = [frame.json() for frame in rest[:-1]]
    assert events[-1]["event"] == "workflow_finished"
    assert finish(events)["status"] == "stopped"
    assert finish(events)["error"] == "Stopped by user."
    node = finished(events, "call")
    assert node["status"] == "stopped"
    assert "after" not in started_nodes(events)
    assert aborted_after < 5  # at once, not at the end of some timeout
    checked(await read_run_log(stack.nats_url, run_id))


# LLM


async def test_an_llm_streams_text_chunks_in_order_and_counts_tokens(
    stack: Stack, chat: Peer
) -> None:
    gate = key()
    node = llm(
        "ask",
        f"{chat.url}/v1",
        model=f"gated-{gate}",
        api_key="sk-e2e",
        system="Be brief.",
        messages=[{"role": "assistant", "content": "Ask me, {{input.name}}."}],
        prompt="hello {{input.name}}",
        temperature=0.2,
        max_tokens=64,
    )
    definition = one_call(node, field("name"), answer="{{ask.text}}")
    workflow_id = await stack.create_workflow(USER, definition)
    events: list[Event] = []
    async with (
        stack.client(USER) as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": {"name": "Ada"}}
        ) as response,
    ):
        async for frame in sse_frames(response):
            if frame.data == "[DONE]":
                break
            events.append(frame.json())
            if events[-1]["event"] == "text_chunk" and not chat.release[gate].is_set():
                # The first delta reached this client while the peer holds back the rest:
                # chunks stream through, they are not collected at the end.
                assert "ask" not in [d["node_id"] for d in of(events, "node_finished")]
                chat.release[gate].set()
    checked(events)

    said = "hello Ada"
    answer = "You said: hello Ada"
    chunks = of(events, "text_chunk")
    assert [c["text"] for c in chunks] == answer_pieces(said)
    assert all(c["from_variable_selector"] == ["ask", "text"] for c in chunks)
    first_chunk = position(events, "text_chunk")
    assert position(events, "node_started", "ask") < first_chunk
    assert first_chunk < position(events, "node_finished", "ask")

    usage = usage_for(said)
    data = finished(events, "ask")
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"]["text"] == answer
    assert data["outputs"]["usage"] == usage
    assert data["outputs"]["finish_reason"] == "stop"
    assert data["outputs"]["model"] == f"gated-{gate}"
    assert data["execution_metadata"]["total_tokens"] == usage["total_tokens"]
    assert finish(events)["status"] == "succeeded"
    assert finish(events)["outputs"] == {"answer": answer}
    assert finish(events)["total_tokens"] == usage["total_tokens"]

    (seen,) = [r for r in chat.received("/v1/chat/completions") if f"gated-{gate}" in r.text]
    sent = seen.json()
    assert seen.headers["authorization"] == "Bearer sk-e2e"
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 64
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Ask me, Ada."},
        {"role": "user", "content": said},
    ]


async def test_without_usage_tokens_are_counted_per_chunk(stack: Stack, chat: Peer) -> None:
    node = llm("ask", f"{chat.url}/v1", prompt="count {{input.name}}", include_usage=False)
    events = await run(stack, one_call(node, field("name"), answer="{{ask.text}}"), {"name": "me"})

    pieces = len(answer_pieces("count me"))
    assert len(of(events, "text_chunk")) == pieces
    assert finished(events, "ask")["outputs"]["usage"] == {
        "completion_tokens": pieces,
        "total_tokens": pieces,
        "estimated": True,
    }
    assert finish(events)["total_tokens"] == pieces


async def test_an_llm_error_answer_fails_the_node(stack: Stack, chat: Peer) -> None:
    node = llm("ask", f"{chat.url}/v1", model="refuse", prompt="hi")
    events = await run(stack, one_call(node))

    data = finished(events, "ask")
    assert data["status"] == "failed"
    assert data["error"] == (
        'the LLM endpoint answered HTTP 401: {"error": {"message": "invalid api key"}}'
    )
    assert finish(events)["status"] == "failed"
    assert of(events, "text_chunk") == []
