"""A workflow with each LLM `api` through the whole stack, against the replaying provider.

The engine process calls tests/e2e/llm_peer.py on 127.0.0.1; events are read from the run's
SSE stream as a client reads them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.llm_peer import TEXT, TEXT_DELTAS, TEXT_USAGE, TOOL_ARGUMENTS, TOOL_USAGE, llm_peer
from tests.e2e.peers import Peer
from tests.e2e.test_nodes_http import finish, finished, of, one_call, run
from tests.unit.builders import field, llm

pytestmark = pytest.mark.e2e

APIS = ["chat_completions", "responses", "anthropic_messages"]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[Peer]:
    async with llm_peer() as serving:
        yield serving


@pytest.mark.parametrize("api", APIS)
async def test_each_api_streams_its_answer_through_the_stack(
    stack: Stack, provider: Peer, api: str
) -> None:
    node = llm("ask", f"{provider.url}/v1", api=api, model="text", prompt="{{input.q}}")
    events = await run(stack, one_call(node, field("q"), answer="{{ask.text}}"), {"q": "Capital?"})

    assert [chunk["text"] for chunk in of(events, "text_chunk")] == TEXT_DELTAS
    data = finished(events, "ask")
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"]["usage"] == TEXT_USAGE
    assert data["outputs"]["response"]
    assert finish(events)["outputs"] == {"answer": TEXT}
    assert finish(events)["total_tokens"] == TEXT_USAGE["total_tokens"]


@pytest.mark.parametrize("api", APIS)
async def test_each_api_rebuilds_tool_calls_through_the_stack(
    stack: Stack, provider: Peer, api: str
) -> None:
    node = llm(
        "ask",
        f"{provider.url}/v1",
        api=api,
        model="tool_calls",
        upstream_stream=False,
        prompt="Weather in {{input.q}}?",
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    definition = one_call(
        node, field("q"), first="{{ask.tool_calls.0.arguments.city}}", why="{{ask.finish_reason}}"
    )
    events = await run(stack, definition, {"q": "Paris and Tokyo"})

    data = finished(events, "ask")
    assert data["status"] == "succeeded", data["error"]
    assert [call["arguments"] for call in data["outputs"]["tool_calls"]] == TOOL_ARGUMENTS
    assert finish(events)["outputs"] == {"first": "Paris", "why": "tool_calls"}
    assert finish(events)["total_tokens"] == TOOL_USAGE["total_tokens"]


async def test_a_provider_error_fails_the_run(stack: Stack, provider: Peer) -> None:
    node = llm("ask", f"{provider.url}/v1", api="anthropic_messages", model="error", prompt="hi")
    events = await run(stack, one_call(node))

    data = finished(events, "ask")
    assert data["status"] == "failed"
    assert data["error"] == "the LLM endpoint reported an error: Overloaded (overloaded_error)"
    assert finish(events)["status"] == "failed"
