"""The OpenAI-compatible layer as pure translation: run events in, OpenAI frames out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flowstream_gateway.errors import ApiError
from flowstream_gateway.hub import StreamedEvent
from flowstream_gateway.openai_compat.chat import ChatChunks
from flowstream_gateway.openai_compat.inputs import run_inputs
from flowstream_gateway.openai_compat.reading import RunReading, answer_text
from flowstream_gateway.openai_compat.requests import Conversation
from flowstream_gateway.openai_compat.responses import ResponseEvents

from tests.unit.builders import definition, end, field, start

RUN = "0b6f3c52-8d1e-4c0a-9f7e-2a4b6c8d0e1f"


def event(name: str, data: dict[str, Any], cursor: int = 1) -> StreamedEvent:
    body = {"event": name, "workflow_run_id": RUN, "task_id": "t", "data": data, "seq": cursor}
    return StreamedEvent(cursor, cursor, name, json.dumps(body).encode())


def chunk(text: str) -> StreamedEvent:
    return event("text_chunk", {"text": text, "from_variable_selector": ["ask", "text"]})


def llm_finished(prompt: int, total: int) -> StreamedEvent:
    usage = {"prompt_tokens": prompt, "completion_tokens": total - prompt, "total_tokens": total}
    return event("node_finished", {"node_type": "LLM", "outputs": {"usage": usage}})


def run_finished(status: str, outputs: Any = None, error: str | None = None) -> StreamedEvent:
    data = {"status": status, "outputs": outputs, "error": error, "total_tokens": 30}
    return event("workflow_finished", data)


def chat_frames(raw: bytes) -> list[Any]:
    frames = [block.removeprefix("data: ") for block in raw.decode().split("\n\n") if block]
    return [frame if frame == "[DONE]" else json.loads(frame) for frame in frames]


def test_the_answer_text_rule() -> None:
    assert answer_text({"answer": "a", "text": "t"}) == "a"
    assert answer_text({"text": "t", "other": 1}) == "t"
    assert answer_text({"only": 42}) == "42"
    assert json.loads(answer_text({"a": 1, "b": [2]})) == {"a": 1, "b": [2]}
    assert answer_text(None) == ""


def test_chat_chunks_carry_each_delta_then_stop_usage_and_done() -> None:
    writer = ChatChunks(RunReading(RUN), "my-flow", include_usage=True)
    raw = writer.opening()
    for item in (chunk("Hel"), chunk("lo"), llm_finished(12, 30), run_finished("succeeded")):
        raw += writer.on_event(item)

    frames = chat_frames(raw)
    assert frames[-1] == "[DONE]"
    chunks = frames[:-1]
    assert {c["id"] for c in chunks} == {"chatcmpl-0b6f3c528d1e4c0a9f7e2a4b6c8d0e1f"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hel", "lo"]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"] == {"prompt_tokens": 12, "completion_tokens": 18, "total_tokens": 30}


def test_a_run_that_streamed_nothing_sends_its_answer_once() -> None:
    writer = ChatChunks(RunReading(RUN), "m", include_usage=False)
    frames = chat_frames(writer.on_event(run_finished("succeeded", {"answer": "whole"})))

    assert frames[0]["choices"][0]["delta"] == {"content": "whole"}
    assert frames[1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in frames[1]
    assert frames[2] == "[DONE]"


def test_a_failed_run_ends_a_chat_stream_with_an_error_frame() -> None:
    writer = ChatChunks(RunReading(RUN), "m", include_usage=False)
    raw = writer.on_event(chunk("part"))
    raw += writer.on_event(run_finished("failed", error="node `ask`: boom"))

    frames = chat_frames(raw)
    assert frames[-2]["error"] == {
        "message": "node `ask`: boom",
        "type": "server_error",
        "param": None,
        "code": "workflow_failed",
    }
    assert frames[-1] == "[DONE]"


def test_response_events_are_numbered_and_end_failed_when_the_run_fails() -> None:
    writer = ResponseEvents(RunReading(RUN), "m", None)
    raw = writer.opening() + writer.on_event(chunk("part"))
    raw += writer.on_event(run_finished("stopped", error="Stopped by user."))

    blocks = [b for b in raw.decode().split("\n\n") if b]
    names = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
    bodies = [json.loads(b.split("\n")[1].removeprefix("data: ")) for b in blocks]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.failed",
    ]
    assert [b["type"] for b in bodies] == names
    assert [b["sequence_number"] for b in bodies] == list(range(6))
    assert bodies[-1]["response"]["status"] == "failed"
    assert bodies[-1]["response"]["error"] == {
        "code": "workflow_stopped",
        "message": "Stopped by user.",
    }


CONVERSATION = Conversation(
    messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "last"},
    ],
    last_user="last",
)


def test_the_user_message_goes_to_query_or_the_only_required_text_input() -> None:
    with_query = definition([start(field("query"), field("x", required=True)), end()], [])
    assert run_inputs(with_query, CONVERSATION, {"x": "1"}) == {"query": "last", "x": "1"}

    only = definition([start(field("topic", required=True), field("n", "integer")), end()], [])
    assert run_inputs(only, CONVERSATION, {}) == {"topic": "last", "n": None}

    named = definition(
        [start(field("query"), field("ask")), end()], [], config={"openai_input": "ask"}
    )
    assert run_inputs(named, CONVERSATION, {})["ask"] == "last"


def test_the_conversation_goes_to_messages() -> None:
    as_list = definition([start(field("query"), field("messages", "array")), end()], [])
    assert run_inputs(as_list, CONVERSATION, {})["messages"] == CONVERSATION.messages

    as_text = definition([start(field("query"), field("messages", "paragraph")), end()], [])
    transcript = run_inputs(as_text, CONVERSATION, {})["messages"]
    assert transcript == "user: hi\nassistant: yo\nuser: last"


@pytest.mark.parametrize(
    ("inputs", "config", "message"),
    [
        ([field("a", required=True), field("b", required=True)], {}, "openai_input"),
        ([field("query")], {"openai_input": "nope"}, "`nope`, which START does not declare"),
    ],
)
def test_a_workflow_without_a_place_for_the_message_is_a_400(
    inputs: list[dict[str, Any]], config: dict[str, Any], message: str
) -> None:
    workflow = definition([start(*inputs), end()], [], config=config)
    with pytest.raises(ApiError) as raised:
        run_inputs(workflow, CONVERSATION, {})
    assert raised.value.status == 400
    assert message in raised.value.message
