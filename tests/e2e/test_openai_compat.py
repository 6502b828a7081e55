"""Workflows as OpenAI-compatible models, driven by the unchanged OpenAI SDKs over the stack.

The PyPI `openai` SDK runs in the test; the npm `openai` SDK runs as a Node process
(tests/sdk/openai-node, installed by `make sdk`). The workflows call an LLM node against the
chat peer, which answers `You said: <last message>` in 4-character deltas.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import IN_CI
from tests.e2e.conftest import Stack
from tests.e2e.peers import Peer, answer_pieces, chat_peer, usage_for
from tests.unit.builders import Spec, chain, end, field, llm, start, template

pytestmark = pytest.mark.e2e

USER = "openai-compat"
NODE_DRIVER = Path(__file__).resolve().parents[1] / "sdk" / "openai-node" / "drive.mjs"


@pytest.fixture(scope="module")
async def chat() -> AsyncIterator[Peer]:
    async with chat_peer() as serving:
        yield serving


def named(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def asking_workflow(chat: Peer, name: str, **config: Any) -> Spec:
    """START(query) → LLM (echoes the query) → END(answer)."""
    node = llm("ask", f"{chat.url}/v1", prompt="{{input.query}}", **config)
    return {
        "name": name,
        "nodes": [start(field("query", required=True)), node, end(answer="{{ask.text}}")],
        "connections": chain("start", "ask", "end"),
    }


def client(stack: Stack, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key=token, max_retries=0)


@pytest.fixture(scope="module")
async def echo(stack: Stack, chat: Peer) -> str:
    """A workflow id; its name is `echo-<id>`'s definition name."""
    return await stack.create_workflow(USER, asking_workflow(chat, named("echo")))


# The Python SDK, both APIs, both modes


async def test_chat_completions_blocking(stack: Stack, echo: str) -> None:
    async with client(stack, stack.token(USER)) as sdk:
        completion = await sdk.chat.completions.create(
            model=echo,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": "hello Ada"},
            ],
        )

    assert completion.object == "chat.completion"
    assert completion.model == echo
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: hello Ada"
    assert choice.finish_reason == "stop"
    usage = usage_for("hello Ada")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == usage["prompt_tokens"]
    assert completion.usage.completion_tokens == usage["completion_tokens"]
    assert completion.usage.total_tokens == usage["total_tokens"]


async def test_chat_completions_streaming(stack: Stack, echo: str) -> None:
    deltas: list[str] = []
    finish: list[str] = []
    usages = []
    async with client(stack, stack.token(USER)) as sdk:
        chunks = await sdk.chat.completions.create(
            model=echo,
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in chunks:
            assert chunk.object == "chat.completion.chunk"
            for choice in chunk.choices:
                if choice.delta.content:
                    deltas.append(choice.delta.content)
                if choice.finish_reason:
                    finish.append(choice.finish_reason)
            if chunk.usage is not None:
                usages.append(chunk.usage)

    # The LLM node's own deltas reach the SDK one by one.
    assert deltas == answer_pieces("stream me")
    assert finish == ["stop"]
    (usage,) = usages
    assert usage.total_tokens == usage_for("stream me")["total_tokens"]
    assert usage.prompt_tokens == 11


async def test_responses_blocking(stack: Stack, echo: str) -> None:
    async with client(stack, stack.token(USER)) as sdk:
        response = await sdk.responses.create(
            model=echo, input="hello Grace", instructions="Be brief."
        )

    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "You said: hello Grace"
    assert response.usage is not None
    assert response.usage.total_tokens == usage_for("hello Grace")["total_tokens"]
    assert response.usage.input_tokens == 11


async def test_responses_streaming(stack: Stack, echo: str) -> None:
    types: list[str] = []
    deltas: list[str] = []
    completed = None
    async with client(stack, stack.token(USER)) as sdk:
        events = await sdk.responses.create(
            model=echo,
            input=[{"role": "user", "content": [{"type": "input_text", "text": "stream me"}]}],
            stream=True,
        )
        async for event in events:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            if event.type == "response.completed":
                completed = event.response

    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert deltas == answer_pieces("stream me")
    assert completed is not None
    assert completed.status == "completed"
    assert completed.output_text == "You said: stream me"
    assert completed.usage is not None
    assert completed.usage.total_tokens == usage_for("stream me")["total_tokens"]


# The npm SDK


async def test_the_node_sdk_drives_both_apis_in_both_modes(stack: Stack, echo: str) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_DRIVER.parent / "node_modules" / "openai").is_dir():
        message = "node or the npm openai SDK is missing (run `make sdk`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DRIVER),
        f"{stack.base_url}/v1",
        stack.token(USER),
        echo,
        "hello Node",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result = json.loads(out)

    usage = usage_for("hello Node")
    answer = "You said: hello Node"
    assert result["chatBlocking"]["object"] == "chat.completion"
    assert result["chatBlocking"]["text"] == answer
    assert result["chatBlocking"]["usage"]["total_tokens"] == usage["total_tokens"]
    assert result["chatStreaming"]["deltas"] == answer_pieces("hello Node")
    assert result["chatStreaming"]["finishReason"] == "stop"
    assert result["chatStreaming"]["usage"]["total_tokens"] == usage["total_tokens"]
    assert result["responsesBlocking"]["text"] == answer
    assert result["responsesBlocking"]["status"] == "completed"
    assert result["responsesStreaming"]["deltas"] == answer_pieces("hello Node")
    assert result["responsesStreaming"]["types"][-1] == "response.completed"
    assert result["responsesStreaming"]["usage"]["total_tokens"] == usage["total_tokens"]
    assert result["missingModel"]["status"] == 404
    assert result["missingModel"]["code"] == "model_not_found"


# Choosing the workflow and its inputs


async def test_a_workflow_is_found_by_name_and_an_app_key_needs_no_model(
    stack: Stack, chat: Peer
) -> None:
    name = named("by-name")
    workflow_id = await stack.create_workflow(USER, asking_workflow(chat, name))
    async with client(stack, stack.token(USER)) as sdk:
        by_name = await sdk.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "by name"}]
        )
    assert by_name.choices[0].message.content == "You said: by name"

    async with stack.client(USER) as api:
        issued = await api.post("/api/keys", json={"workflow_id": workflow_id})
        assert issued.status_code in (200, 201), issued.text
        key = issued.json()["key"]
    async with client(stack, key) as sdk:
        by_key = await sdk.responses.create(model="anything", input="by key")
    assert by_key.output_text == "You said: by key"


async def test_the_conversation_and_a_named_input(stack: Stack) -> None:
    definition = {
        "name": named("conversation"),
        "config": {"openai_input": "question"},
        "nodes": [
            start(
                field("question", required=True),
                field("messages", "array"),
                field("tone", required=True),
            ),
            template("say", "{{input.tone}}: {{input.question}}"),
            end(answer="{{say.text}}", seen="{{input.messages}}"),
        ],
        "connections": chain("start", "say", "end"),
    }
    workflow_id = await stack.create_workflow(USER, definition)
    conversation: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"},
    ]
    async with client(stack, stack.token(USER)) as sdk:
        completion = await sdk.chat.completions.create(
            model=workflow_id,
            messages=conversation,
            extra_body={"inputs": {"tone": "calm"}},
        )
        # Nothing streamed (a TEMPLATE without `stream`): the answer arrives as one delta.
        chunks = await sdk.chat.completions.create(
            model=workflow_id,
            messages=conversation,
            stream=True,
            extra_body={"inputs": {"tone": "calm"}},
        )
        deltas = [c.choices[0].delta.content async for c in chunks if c.choices]

    assert completion.choices[0].message.content == "calm: how are you?"
    assert [d for d in deltas if d] == ["calm: how are you?"]


async def test_the_output_rule_and_a_missing_input(stack: Stack) -> None:
    definition = {
        "name": named("outputs"),
        "nodes": [
            start(field("query", required=True)),
            end(echoed="{{input.query}}", length="{{input.query | length}}"),
        ],
        "connections": chain("start", "end"),
    }
    workflow_id = await stack.create_workflow(USER, definition)
    async with client(stack, stack.token(USER)) as sdk:
        completion = await sdk.chat.completions.create(
            model=workflow_id, messages=[{"role": "user", "content": "abc"}]
        )
    # Neither `answer`, `text` nor a single output: every output, as JSON.
    assert json.loads(completion.choices[0].message.content or "") == {
        "echoed": "abc",
        "length": 3,
    }

    no_query = {
        "name": named("no-query"),
        "nodes": [start(field("a", required=True), field("b", required=True)), end()],
        "connections": chain("start", "end"),
    }
    other_id = await stack.create_workflow(USER, no_query)
    async with client(stack, stack.token(USER)) as sdk:
        with pytest.raises(openai.BadRequestError) as raised:
            await sdk.chat.completions.create(
                model=other_id, messages=[{"role": "user", "content": "x"}]
            )
    assert raised.value.status_code == 400
    assert "openai_input" in raised.value.message


# Failures in OpenAI's shape


async def test_a_failed_run_is_an_openai_error(stack: Stack, chat: Peer) -> None:
    workflow_id = await stack.create_workflow(
        USER, asking_workflow(chat, named("refused"), model="refuse")
    )
    async with client(stack, stack.token(USER)) as sdk:
        with pytest.raises(openai.InternalServerError) as raised:
            await sdk.chat.completions.create(
                model=workflow_id, messages=[{"role": "user", "content": "x"}]
            )
        assert raised.value.status_code == 500
        assert isinstance(raised.value.body, dict)
        assert raised.value.body["code"] == "workflow_failed"
        assert "HTTP 401" in raised.value.body["message"]

        chunks = await sdk.chat.completions.create(
            model=workflow_id, messages=[{"role": "user", "content": "x"}], stream=True
        )
        with pytest.raises(openai.APIError, match="HTTP 401"):
            async for _ in chunks:
                pass

        events = await sdk.responses.create(model=workflow_id, input="x", stream=True)
        kinds = [event.type async for event in events]
    assert kinds[-1] == "response.failed"


async def test_errors_carry_both_shapes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as raw:
        missing_auth = await raw.post("/v1/chat/completions", json={})
        bad_body = await raw.post(
            "/v1/responses",
            json={"model": "m"},
            headers={"Authorization": f"Bearer {stack.token(USER)}"},
        )
        unknown = await raw.post(
            "/v1/responses",
            json={"model": "no-such-model", "input": "hi"},
            headers={"Authorization": f"Bearer {stack.token(USER)}"},
        )

    assert missing_auth.status_code == 401
    assert missing_auth.json()["error"]["type"] == "authentication_error"
    assert missing_auth.json()["code"] == "unauthorized"
    assert bad_body.status_code == 400
    assert bad_body.json()["error"]["type"] == "invalid_request_error"
    assert bad_body.json()["status"] == 400
    assert "input" in bad_body.json()["message"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
