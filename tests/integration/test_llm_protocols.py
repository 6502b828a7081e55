"""The LLM node against a provider replaying recorded answers of each wire protocol over HTTP.

Every `api` in both upstream modes (`upstream_stream`) and both client modes (`stream`), tool
calls rebuilt from many fragments, usage-only final chunks, and every way a provider can fail:
an error event, a failed or truncated stream, an HTTP error, an answer in another protocol.
The node runs in-process; the provider is a real HTTP server on 127.0.0.1 (tests/e2e/llm_peer.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from flowstream_shared.events import NodeFinishedData, NodeStatus, RunStatus, TextChunk
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from tests.e2e.llm_peer import (
    TEXT,
    TEXT_DELTAS,
    TEXT_USAGE,
    TOOL_ARGUMENTS,
    TOOL_USAGE,
    llm_peer,
)
from tests.e2e.peers import Peer
from tests.unit.builders import chain, definition, end, field, llm, start
from tests.unit.runs import Run, finished_nodes, of_type, run_of, the_finish

APIS = ["chat_completions", "responses", "anthropic_messages"]
PATHS = {
    "chat_completions": "/v1/chat/completions",
    "responses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[Peer]:
    async with llm_peer() as serving:
        yield serving


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def asking(provider: Peer, api: str, scenario: str, **config: Any) -> WorkflowDefinition:
    config.setdefault("prompt", "What is the capital of {{input.country}}?")
    node = llm("ask", f"{provider.url}/v1", api=api, model=scenario, **config)
    workflow = definition(
        [start(field("country")), node, end(answer="{{ask.text}}")], chain("start", "ask", "end")
    )
    validate_definition(workflow)
    return workflow


async def run_node(
    provider: Peer, http: httpx.AsyncClient, api: str, scenario: str, **config: Any
) -> tuple[Run, NodeFinishedData]:
    run = run_of(asking(provider, api, scenario, **config), {"country": "France"}, http=http)
    await run.execute()
    return run, finished_nodes(run.log.events)["ask"]


def chunks(run: Run) -> list[str]:
    return [event.data.text for event in of_type(run.log.events, TextChunk)]


def last_request(provider: Peer, api: str) -> dict[str, Any]:
    body: dict[str, Any] = provider.received(PATHS[api])[-1].json()
    return body


# Every protocol in every mode


@pytest.mark.parametrize("stream", [True, False], ids=["chunks", "no-chunks"])
@pytest.mark.parametrize("upstream_stream", [True, False], ids=["upstream-sse", "upstream-json"])
@pytest.mark.parametrize("api", APIS)
async def test_every_protocol_in_every_mode(
    provider: Peer, http: httpx.AsyncClient, api: str, upstream_stream: bool, stream: bool
) -> None:
    run, node = await run_node(
        provider, http, api, "text", upstream_stream=upstream_stream, stream=stream
    )

    assert node.status == NodeStatus.SUCCEEDED, node.error
    assert node.outputs is not None
    assert node.outputs["text"] == TEXT
    assert node.outputs["tool_calls"] == []
    assert node.outputs["finish_reason"] == "stop"
    assert node.outputs["usage"] == TEXT_USAGE
    assert node.execution_metadata == {"total_tokens": TEXT_USAGE["total_tokens"]}
    finished = the_finish(run.log.events)
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": TEXT}
    assert finished.total_tokens == TEXT_USAGE["total_tokens"]

    streamed = chunks(run)
    if not stream:
        assert streamed == []
    elif upstream_stream:
        assert streamed == TEXT_DELTAS  # the provider's own deltas, as they came
    else:
        # A whole answer re-cut on word boundaries: several chunks that join back exactly.
        assert "".join(streamed) == TEXT
        assert 1 < len(streamed) <= 32
        assert all(piece.strip() for piece in streamed)

    sent = last_request(provider, api)
    assert sent["stream"] is upstream_stream
    assert sent["model"] == "text"


@pytest.mark.parametrize("api", APIS)
async def test_a_streamed_and_a_whole_answer_give_the_same_outputs(
    provider: Peer, http: httpx.AsyncClient, api: str
) -> None:
    _, from_stream = await run_node(provider, http, api, "text", upstream_stream=True)
    _, from_whole = await run_node(provider, http, api, "text", upstream_stream=False)

    assert from_stream.outputs == from_whole.outputs
    assert from_stream.outputs is not None
    assert from_stream.outputs["response"]  # the rebuilt response is part of the comparison


async def test_the_rebuilt_responses_have_each_protocols_own_shape(
    provider: Peer, http: httpx.AsyncClient
) -> None:
    outputs = {}
    for api in APIS:
        _, node = await run_node(provider, http, api, "text")
        assert node.outputs is not None
        outputs[api] = node.outputs["response"]

    chat = outputs["chat_completions"]
    assert chat["object"] == "chat.completion"
    assert chat["id"] == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert chat["model"] == "gpt-4o-mini-2024-07-18"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": TEXT, "refusal": None}
    assert chat["choices"][0]["finish_reason"] == "stop"
    assert chat["usage"]["total_tokens"] == 22

    responses = outputs["responses"]
    assert responses["object"] == "response"
    assert responses["status"] == "completed"
    assert responses["id"] == "resp_68a2f6b0c7e88190a3f1d4e2b5c6a7d8"
    (message,) = responses["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["id"] == "msg_68a2f6b1a0d48190b7c3e5f9a1b2c3d4"
    assert message["content"] == [{"type": "output_text", "text": TEXT, "annotations": []}]
    assert responses["usage"]["input_tokens"] == 14 and responses["usage"]["output_tokens"] == 8

    anthropic = outputs["anthropic_messages"]
    assert anthropic["type"] == "message" and anthropic["role"] == "assistant"
    assert anthropic["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert anthropic["content"] == [{"type": "text", "text": TEXT}]
    assert anthropic["stop_reason"] == "end_turn"
    assert anthropic["usage"] == {"input_tokens": 14, "output_tokens": 8}


# Requests in each protocol's own shape


async def test_each_protocol_gets_its_own_request_shape(
    provider: Peer, http: httpx.AsyncClient
) -> None:
    config: dict[str, Any] = {
        "system": "Answer in one sentence.",
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! Ask away."},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
        "tools": [WEATHER_TOOL],
        "tool_choice": {"name": "get_weather"},
    }
    turns = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! Ask away."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    for api in APIS:
        _, node = await run_node(provider, http, api, "text", **config)
        assert node.status == NodeStatus.SUCCEEDED, node.error

    chat = last_request(provider, "chat_completions")
    assert chat["messages"] == [{"role": "system", "content": "Answer in one sentence."}, *turns]
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["max_tokens"] == 64 and chat["temperature"] == 0.2
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER_TOOL["description"],
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}

    responses = last_request(provider, "responses")
    assert responses["instructions"] == "Answer in one sentence."
    assert responses["input"] == turns
    assert responses["max_output_tokens"] == 64
    assert "max_tokens" not in responses and "stream_options" not in responses
    assert responses["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": WEATHER_TOOL["description"],
            "parameters": WEATHER_TOOL["parameters"],
            "strict": False,
        }
    ]
    assert responses["tool_choice"] == {"type": "function", "name": "get_weather"}

    anthropic = last_request(provider, "anthropic_messages")
    assert anthropic["system"] == "Answer in one sentence."
    assert anthropic["messages"] == turns
    assert anthropic["max_tokens"] == 64
    assert anthropic["tools"] == [
        {
            "name": "get_weather",
            "description": WEATHER_TOOL["description"],
            "input_schema": WEATHER_TOOL["parameters"],
        }
    ]
    assert anthropic["tool_choice"] == {"type": "tool", "name": "get_weather"}


@pytest.mark.parametrize(
    ("api", "choice", "sent"),
    [
        ("chat_completions", "required", "required"),
        ("responses", "none", "none"),
        ("anthropic_messages", "required", {"type": "any"}),
        ("anthropic_messages", "auto", {"type": "auto"}),
    ],
)
async def test_tool_choice_keywords(
    provider: Peer, http: httpx.AsyncClient, api: str, choice: str, sent: Any
) -> None:
    await run_node(provider, http, api, "text", tools=[WEATHER_TOOL], tool_choice=choice)

    assert last_request(provider, api)["tool_choice"] == sent


async def test_anthropic_needs_max_tokens_and_a_version(
    provider: Peer, http: httpx.AsyncClient
) -> None:
    await run_node(provider, http, "anthropic_messages", "text", api_key="sk-ant-test-key")

    seen = provider.received("/v1/messages")[-1]
    assert seen.json()["max_tokens"] == 4096
    assert seen.headers["x-api-key"] == "sk-ant-test-key"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers


# Tool calls


@pytest.mark.parametrize("upstream_stream", [True, False], ids=["upstream-sse", "upstream-json"])
@pytest.mark.parametrize("api", APIS)
async def test_tool_calls_are_rebuilt_from_their_fragments(
    provider: Peer, http: httpx.AsyncClient, api: str, upstream_stream: bool
) -> None:
    run, node = await run_node(
        provider,
        http,
        api,
        "tool_calls",
        upstream_stream=upstream_stream,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )

    assert node.status == NodeStatus.SUCCEEDED, node.error
    assert node.outputs is not None
    calls = node.outputs["tool_calls"]
    assert [call["name"] for call in calls] == ["get_weather", "get_weather"]
    assert [call["arguments"] for call in calls] == TOOL_ARGUMENTS
    assert all(call["id"] for call in calls)
    assert len({call["id"] for call in calls}) == 2
    assert node.outputs["finish_reason"] == "tool_calls"
    assert node.outputs["usage"] == TOOL_USAGE
    assert the_finish(run.log.events).total_tokens == TOOL_USAGE["total_tokens"]

    response = node.outputs["response"]
    ids = [call["id"] for call in calls]
    if api == "chat_completions":
        assert ids == ["call_4Vq3oHvxtSRbrkDSgLmRVaGa", "call_Z8xYTcNjEvv1ZPyP5f4Wy0mX"]
        message = response["choices"][0]["message"]
        assert message["content"] is None
        rebuilt = message["tool_calls"]
        assert [c["id"] for c in rebuilt] == ids
        assert [json.loads(c["function"]["arguments"]) for c in rebuilt] == TOOL_ARGUMENTS
        assert response["choices"][0]["finish_reason"] == "tool_calls"
        assert node.outputs["text"] == ""
    elif api == "responses":
        # The call id (what a tool result answers to), not the item id.
        assert ids == ["call_pF3nRt7YcVbLq2Xw9sZk4Hj1", "call_Jm8Tq2WvXyZ3aB4cD5eF6gH7"]
        items = response["output"]
        assert [item["type"] for item in items] == ["function_call", "function_call"]
        assert [item["call_id"] for item in items] == ids
        assert [item["id"] for item in items] == ["fc_68a2f6b2d1e08190", "fc_68a2f6b2d1e08191"]
        assert [json.loads(item["arguments"]) for item in items] == TOOL_ARGUMENTS
    else:
        assert ids == ["toolu_01A09q90qw90lq917835lq9", "toolu_01B7xKp3mNqR5sT8vW2yZ4aC"]
        assert node.outputs["text"] == "I'll check the weather in both cities."
        blocks = response["content"]
        assert [block["type"] for block in blocks] == ["text", "tool_use", "tool_use"]
        assert [block["input"] for block in blocks[1:]] == TOOL_ARGUMENTS
        assert response["stop_reason"] == "tool_use"


# Failures are failures, never an empty success


@pytest.mark.parametrize(
    ("api", "scenario", "message"),
    [
        (
            "chat_completions",
            "error",
            "the LLM endpoint reported an error: The server had an error while processing",
        ),
        ("chat_completions", "truncated", "the LLM stream ended before `data: [DONE]`"),
        ("chat_completions", "http_error", "the LLM endpoint answered HTTP 429: "),
        (
            "responses",
            "error",
            "the LLM endpoint reported an error: Rate limit reached for gpt-4.1 on tokens per min"
            " (TPM). (rate_limit_exceeded)",
        ),
        ("responses", "failed", "the LLM endpoint reported an error: The model produced invalid"),
        ("responses", "truncated", "the LLM stream ended before `response.completed`"),
        ("responses", "http_error", "the LLM endpoint answered HTTP 429: "),
        (
            "anthropic_messages",
            "error",
            "the LLM endpoint reported an error: Overloaded (overloaded_error)",
        ),
        ("anthropic_messages", "truncated", "the LLM stream ended before `message_stop`"),
        ("anthropic_messages", "http_error", "the LLM endpoint answered HTTP 429: "),
    ],
)
async def test_provider_failures_fail_the_node(
    provider: Peer, http: httpx.AsyncClient, api: str, scenario: str, message: str
) -> None:
    run, node = await run_node(provider, http, api, scenario)

    assert node.status == NodeStatus.FAILED
    assert node.error is not None and node.error.startswith(message), node.error
    assert node.outputs in (None, {})
    finished = the_finish(run.log.events)
    assert finished.status == RunStatus.FAILED
    assert finished.outputs in (None, {})


async def test_an_http_error_quotes_the_providers_message(
    provider: Peer, http: httpx.AsyncClient
) -> None:
    _, node = await run_node(provider, http, "anthropic_messages", "http_error")

    assert node.error is not None
    assert "Number of request tokens has exceeded your per-minute rate limit." in node.error


@pytest.mark.parametrize("upstream_stream", [True, False], ids=["upstream-sse", "upstream-json"])
@pytest.mark.parametrize(
    ("api", "recording"),
    [
        ("chat_completions", "responses/text"),
        ("responses", "chat_completions/text"),
        ("anthropic_messages", "chat_completions/text"),
        ("chat_completions", "anthropic_messages/text"),
    ],
)
async def test_an_answer_in_another_protocol_fails_the_node(
    provider: Peer, http: httpx.AsyncClient, api: str, recording: str, upstream_stream: bool
) -> None:
    _, node = await run_node(provider, http, api, recording, upstream_stream=upstream_stream)

    assert node.status == NodeStatus.FAILED
    assert node.error is not None
    assert node.error.startswith(("the LLM stream ended before", "the LLM endpoint sent")), (
        node.error
    )


async def test_a_response_cut_by_max_output_tokens_finishes_with_length(
    provider: Peer, http: httpx.AsyncClient
) -> None:
    run, node = await run_node(provider, http, "responses", "incomplete", max_tokens=2)

    assert node.status == NodeStatus.SUCCEEDED, node.error
    assert node.outputs is not None
    assert node.outputs["text"] == "The capital"
    assert node.outputs["finish_reason"] == "length"
    assert node.outputs["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 2,
        "total_tokens": 16,
    }
    assert node.outputs["response"]["status"] == "incomplete"
    assert node.outputs["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert chunks(run) == ["The", " capital"]


# Keys


@pytest.mark.parametrize("api", APIS)
async def test_the_key_goes_in_headers_only(
    provider: Peer, http: httpx.AsyncClient, api: str
) -> None:
    key = "sk-flowstream-secret-4242"
    run, node = await run_node(provider, http, api, "tool_calls", api_key=key, tools=[WEATHER_TOOL])

    assert node.status == NodeStatus.SUCCEEDED, node.error
    seen = provider.received(PATHS[api])[-1]
    if api == "anthropic_messages":
        assert seen.headers["x-api-key"] == key
    else:
        assert seen.headers["authorization"] == f"Bearer {key}"
    assert key not in seen.text
    events = json.dumps([event.model_dump(mode="json") for event in run.log.events])
    assert key not in events
    assert "api_key" not in events


async def test_a_credential_an_engine_cannot_open_fails_clearly(
    provider: Peer, http: httpx.AsyncClient
) -> None:
    _, node = await run_node(provider, http, "chat_completions", "text", credential="openai-prod")

    assert node.status == NodeStatus.FAILED
    assert node.error is not None and "credentials are not available" in node.error
