"""API_CALL and LLM nodes against real HTTP peers on loopback (uvicorn), executed in-process.

One Starlette app plays both peers: a small REST API and an OpenAI-compatible chat completions
endpoint that streams Server-Sent Events. No NATS and no network beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from flowstream_shared.events import (
    LoopCompleted,
    NodeStatus,
    RunStatus,
    TextChunk,
)
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.credentials_support import MemoryCredentials
from tests.unit.builders import (
    Spec,
    api_call,
    chain,
    connect,
    definition,
    end,
    field,
    llm,
    loop,
    start,
)
from tests.unit.runs import PATIENCE, Run, finished_nodes, node_started, of_type, run_of, the_finish


@dataclasses.dataclass
class Peer:
    url: str
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    slow_started: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    slow_disconnected: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


def _app(peer: Peer) -> Starlette:
    async def record(request: Request) -> dict[str, Any]:
        body = await request.body()
        seen = {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": dict(request.headers),
            "body": body.decode(),
        }
        peer.requests.append(seen)
        return seen

    async def user(request: Request) -> Response:
        await record(request)
        return JSONResponse({"user": {"id": request.path_params["uid"], "name": "Ada Lovelace"}})

    async def echo(request: Request) -> Response:
        seen = await record(request)
        return JSONResponse(seen, status_code=201)

    async def status(request: Request) -> Response:
        await record(request)
        code = int(request.path_params["code"])
        return PlainTextResponse(f"status {code}: " + "detail " * 100, status_code=code)

    async def text(request: Request) -> Response:
        return PlainTextResponse("plain words")

    async def moved(request: Request) -> Response:
        return RedirectResponse("/users/moved", status_code=302)

    async def slow(request: Request) -> Response:
        peer.slow_started.set()
        for _ in range(600):
            if await request.is_disconnected():
                peer.slow_disconnected.set()
                return PlainTextResponse("gone")
            await asyncio.sleep(0.05)
        return PlainTextResponse("finally")

    async def chat(request: Request) -> Response:
        payload = json.loads(await request.body())
        peer.requests.append(
            {"path": request.url.path, "headers": dict(request.headers), "json": payload}
        )
        model = payload["model"]
        if model == "refuse":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        said = payload["messages"][-1]["content"]
        answer = f"You said: {said}"
        pieces = [answer[i : i + 4] for i in range(0, len(answer), 4)]
        usage = {
            "prompt_tokens": 11,
            "completion_tokens": len(pieces),
            "total_tokens": 11 + len(pieces),
        }
        if model == "plain-json":
            return JSONResponse(
                {
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = (payload.get("stream_options") or {}).get("include_usage")

        async def stream() -> AsyncIterator[str]:
            yield ": keep-alive comment\n\n"
            for piece in pieces:
                chunk = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
                if model == "slow":
                    await asyncio.sleep(0.5)
            last = {
                "id": "c1",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(last)}\n\n"
            if include_usage and model != "no-usage":
                tail = {"id": "c1", "model": model, "choices": [], "usage": usage}
                yield f"data: {json.dumps(tail)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/users/{uid}", user),
            Route("/echo", echo, methods=["POST", "PUT", "PATCH", "DELETE"]),
            Route("/status/{code:int}", status),
            Route("/text", text),
            Route("/moved", moved),
            Route("/slow", slow),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    state = Peer(url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(
        uvicorn.Config(
            _app(state), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
    yield state
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def one_call(call: Spec, answer: str, *inputs: Spec) -> WorkflowDefinition:
    workflow = definition(
        [start(field("name"), *inputs), call, end(answer=answer)],
        chain("start", call["id"], "end"),
    )
    validate_definition(workflow)
    return workflow


async def execute(
    workflow: WorkflowDefinition, inputs: dict[str, Any], http: httpx.AsyncClient
) -> Run:
    run = run_of(workflow, inputs, http=http)
    await run.execute()
    return run


# API_CALL


async def test_a_get_maps_fields_of_a_json_answer(peer: Peer, http: httpx.AsyncClient) -> None:
    call = api_call(
        "call",
        f"{peer.url}/users/{{{{input.name}}}}",
        query={"fields": "name"},
        outputs={"name": "{{response.body.user.name}}"},
    )
    run = await execute(
        one_call(call, "{{call.name}} ({{call.status_code}})"), {"name": "u1"}, http
    )

    finished = the_finish(run.log.events)
    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert finished.outputs == {"answer": "Ada Lovelace (200)"}
    assert peer.requests[-1]["path"] == "/users/u1"
    assert peer.requests[-1]["query"] == {"fields": "name"}


async def test_a_post_sends_an_object_body_and_headers(peer: Peer, http: httpx.AsyncClient) -> None:
    call = api_call(
        "call",
        f"{peer.url}/echo",
        method="POST",
        headers={"X-User": "{{input.name}}"},
        body={"profile": "{{input.profile}}", "note": "hi {{input.name}}"},
        outputs={"sent": "{{response.body.body}}", "method": "{{response.body.method}}"},
    )
    workflow = one_call(call, "{{call.method}}", field("profile", "object"))
    run = await execute(workflow, {"name": "Ada", "profile": {"age": 36, "tags": ["math"]}}, http)

    node = finished_nodes(run.log.events)["call"]
    assert node.status == NodeStatus.SUCCEEDED, node.error
    assert node.outputs is not None
    assert node.outputs["status_code"] == 201
    assert json.loads(node.outputs["sent"]) == {
        "profile": {"age": 36, "tags": ["math"]},
        "note": "hi Ada",
    }
    assert peer.requests[-1]["headers"]["x-user"] == "Ada"
    assert peer.requests[-1]["headers"]["content-type"] == "application/json"


async def test_a_text_answer_and_a_redirect(peer: Peer, http: httpx.AsyncClient) -> None:
    text = await execute(one_call(api_call("call", f"{peer.url}/text"), "{{call.body}}"), {}, http)
    moved = await execute(
        one_call(api_call("call", f"{peer.url}/moved"), "{{call.body.user.id}}"), {}, http
    )

    assert the_finish(text.log.events).outputs == {"answer": "plain words"}
    assert the_finish(moved.log.events).outputs == {"answer": "moved"}


async def test_a_server_error_fails_the_node_with_an_excerpt(
    peer: Peer, http: httpx.AsyncClient
) -> None:
    run = await execute(one_call(api_call("call", f"{peer.url}/status/503"), "x"), {}, http)

    node = finished_nodes(run.log.events)["call"]
    assert node.status == NodeStatus.FAILED
    assert node.error is not None
    assert node.error.startswith(f"GET {peer.url}/status/503 answered HTTP 503: status 503: detail")
    assert len(node.error) < 400
    assert the_finish(run.log.events).status == RunStatus.FAILED


async def test_a_stop_aborts_the_request_in_flight(peer: Peer, http: httpx.AsyncClient) -> None:
    peer.slow_started.clear()
    peer.slow_disconnected.clear()
    run = run_of(one_call(api_call("call", f"{peer.url}/slow"), "x"), {}, http=http)

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await peer.slow_started.wait()
    stopped_at = time.perf_counter()
    run.executor.request_stop()
    finished = await task

    assert time.perf_counter() - stopped_at < 1.0
    assert finished.status == RunStatus.STOPPED
    assert finished_nodes(run.log.events)["call"].status == NodeStatus.STOPPED
    async with asyncio.timeout(PATIENCE):
        await peer.slow_disconnected.wait()  # the server saw the connection go


async def test_a_node_timeout_aborts_a_slow_request(peer: Peer, http: httpx.AsyncClient) -> None:
    call = api_call("call", f"{peer.url}/slow", timeout=0.3)
    run = await execute(one_call(call, "x"), {}, http)

    node = finished_nodes(run.log.events)["call"]
    assert node.error == f"GET {peer.url}/slow: no response within 0.3s"


# LLM


def asking(peer: Peer, **config: Any) -> WorkflowDefinition:
    config.setdefault("prompt", "hello {{input.name}}")
    return one_call(
        llm("ask", f"{peer.url}/v1", **config), "{{ask.text}}|{{ask.usage.total_tokens}}"
    )


async def test_an_llm_streams_text_chunks_and_counts_usage(
    peer: Peer, http: httpx.AsyncClient
) -> None:
    stored = MemoryCredentials()
    stored.add("user-1", "llm", value="sk-test-key")
    workflow = asking(peer, credential="llm", system="Be brief.", temperature=0.3, max_tokens=50)
    run = run_of(workflow, {"name": "Ada"}, http=http, credentials=stored.resolver())
    await run.execute()

    events = run.log.events
    finished = the_finish(events)
    assert finished.status == RunStatus.SUCCEEDED, finished.error
    answer = "You said: hello Ada"
    chunks = of_type(events, TextChunk)
    assert "".join(c.data.text for c in chunks) == answer
    assert len(chunks) == 5
    assert {tuple(c.data.from_variable_selector) for c in chunks} == {("ask", "text")}
    node = finished_nodes(events)["ask"]
    assert node.outputs is not None
    assert node.outputs["text"] == answer
    assert node.outputs["finish_reason"] == "stop"
    assert node.outputs["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 5,
        "total_tokens": 16,
    }
    assert node.execution_metadata == {"total_tokens": 16}
    assert finished.total_tokens == 16
    assert finished.outputs == {"answer": f"{answer}|16"}
    sent = peer.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-test-key"
    assert "sk-test-key" not in json.dumps([e.model_dump() for e in events])
    assert sent["json"]["stream"] is True
    assert sent["json"]["stream_options"] == {"include_usage": True}
    assert sent["json"]["temperature"] == 0.3
    assert sent["json"]["max_tokens"] == 50
    assert sent["json"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello Ada"},
    ]


async def test_without_usage_the_chunks_are_counted(peer: Peer, http: httpx.AsyncClient) -> None:
    run = await execute(asking(peer, model="no-usage"), {"name": "Ada"}, http)

    node = finished_nodes(run.log.events)["ask"]
    assert node.outputs is not None
    assert node.outputs["usage"] == {"completion_tokens": 5, "total_tokens": 5, "estimated": True}
    assert the_finish(run.log.events).total_tokens == 5
    assert "api_key" not in json.dumps(peer.requests[-1]["json"])
    assert "authorization" not in peer.requests[-1]["headers"]


async def test_a_plain_json_answer_and_no_streaming_to_the_client(
    peer: Peer, http: httpx.AsyncClient
) -> None:
    run = await execute(asking(peer, model="plain-json", stream=False), {"name": "Ada"}, http)

    assert of_type(run.log.events, TextChunk) == []
    assert the_finish(run.log.events).outputs == {"answer": "You said: hello Ada|16"}


async def test_an_llm_error_fails_the_node(peer: Peer, http: httpx.AsyncClient) -> None:
    run = await execute(asking(peer, model="refuse"), {"name": "Ada"}, http)

    node = finished_nodes(run.log.events)["ask"]
    assert node.status == NodeStatus.FAILED
    assert (
        node.error
        == 'the LLM endpoint answered HTTP 401: {"error": {"message": "invalid api key"}}'
    )


async def test_a_literal_llm_key_is_sent_and_masked(peer: Peer, http: httpx.AsyncClient) -> None:
    run = await execute(asking(peer, api_key="sk-literal-key"), {"name": "Ada"}, http)

    assert peer.requests[-1]["headers"]["authorization"] == "Bearer sk-literal-key"
    assert "sk-literal-key" not in json.dumps([e.model_dump() for e in run.log.events])


async def test_a_missing_credential_fails_the_node(peer: Peer, http: httpx.AsyncClient) -> None:
    before = len(peer.requests)
    run = run_of(
        asking(peer, credential="nope"),
        {"name": "Ada"},
        http=http,
        credentials=MemoryCredentials().resolver(),
    )
    await run.execute()

    error = finished_nodes(run.log.events)["ask"].error
    assert error == "credential 'nope' does not exist (POST /api/credentials)"
    assert len(peer.requests) == before  # nothing was sent


async def test_a_stop_interrupts_a_stream(peer: Peer, http: httpx.AsyncClient) -> None:
    run = run_of(asking(peer, model="slow"), {"name": "Ada"}, http=http)
    first_chunk = run.log.seen(lambda e: isinstance(e, TextChunk))

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await first_chunk.wait()
    run.executor.request_stop()
    async with asyncio.timeout(1):
        finished = await task

    assert finished.status == RunStatus.STOPPED
    assert finished_nodes(run.log.events)["ask"].status == NodeStatus.STOPPED
    assert len(of_type(run.log.events, TextChunk)) < 5


async def test_tokens_of_an_llm_in_a_loop_add_up(peer: Peer, http: httpx.AsyncClient) -> None:
    workflow = definition(
        [
            start(field("name")),
            loop("rep", 3),
            llm("ask", f"{peer.url}/v1", prompt="round {{loop.index}}"),
            end(answer="{{ask.text}}"),
        ],
        [
            connect("start", "rep"),
            connect("rep", "ask", "LOOP"),
            connect("ask", "rep"),
            connect("rep", "end"),
        ],
    )
    validate_definition(workflow)

    run = await execute(workflow, {}, http)

    finished = the_finish(run.log.events)
    assert finished.outputs == {"answer": "You said: round 2"}
    # "You said: round N" streams as 5 chunks: 11 + 5 tokens per call.
    assert finished.total_tokens == 3 * 16
    assert of_type(run.log.events, LoopCompleted)[0].data.total_tokens == 3 * 16
    waited = run.log.seen(node_started("ask"))
    assert waited.is_set()
