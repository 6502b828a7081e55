"""The LLM node's pure parts: re-cutting a whole answer, folding fragments, authentication."""

from __future__ import annotations

import json

import pytest
from flowstream_engine.nodes.base import NodeError
from flowstream_engine.nodes.llm.answer import Answer, split_text
from flowstream_engine.nodes.llm.auth import provider_headers, redact
from flowstream_engine.nodes.llm.chat_completions import ChatCompletions


def test_a_whole_answer_is_cut_on_word_boundaries() -> None:
    text = "One two  three,\nfour five.  "
    pieces = split_text(text, max_chunks=3)

    assert "".join(pieces) == text
    assert pieces == ["One two  ", "three,\nfour ", "five.  "]


def test_a_long_answer_is_cut_into_a_bounded_number_of_chunks() -> None:
    text = " ".join(f"word{i}" for i in range(1000))
    pieces = split_text(text)

    assert "".join(pieces) == text
    assert len(pieces) == 32
    assert split_text("") == []
    assert split_text("single") == ["single"]


def test_tool_call_fragments_fold_in_order_and_usage_arrives_last() -> None:
    chat = ChatCompletions()
    answer = Answer()

    def delta(**fields: object) -> str:
        return json.dumps({"choices": [{"index": 0, "delta": fields}]})

    first = {"index": 0, "id": "call_1", "type": "function"}
    first["function"] = {"name": "search", "arguments": ""}
    events = [delta(tool_calls=[first])]
    for fragment in ['{"q"', ': "fl', "ow", 'stream"}']:
        events.append(delta(tool_calls=[{"index": 0, "function": {"arguments": fragment}}]))
    events.append(
        json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    )
    events.append(
        json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}})
    )
    events.append("[DONE]")
    for data in events:
        assert chat.read_event("message", data, answer) == []

    outputs, tokens = answer.outputs()
    assert answer.complete
    assert outputs["tool_calls"] == [
        {"id": "call_1", "name": "search", "arguments": {"q": "flowstream"}}
    ]
    assert outputs["finish_reason"] == "tool_calls"
    assert outputs["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert tokens == 12


def test_broken_tool_arguments_are_a_failure() -> None:
    answer = Answer()
    draft = answer.tool_call(0)
    draft.take(call_id="call_1", name="search")
    answer.add_arguments(draft, '{"q": "unterminated')

    with pytest.raises(NodeError, match="arguments of tool call 'search' are not JSON"):
        answer.outputs()


def test_an_empty_answer_is_a_failure() -> None:
    answer = Answer()
    answer.finish("stop", "stop")

    with pytest.raises(NodeError, match="empty answer"):
        answer.outputs()


def test_without_usage_tokens_are_estimated() -> None:
    answer = Answer()
    answer.add_text("twelve chars")

    outputs, tokens = answer.outputs()
    assert outputs["usage"] == {"completion_tokens": 3, "total_tokens": 3, "estimated": True}
    assert tokens == 3


def test_each_protocol_authenticates_its_own_way() -> None:
    assert provider_headers("chat_completions", "k1") == {"Authorization": "Bearer k1"}
    assert provider_headers("responses", "k2") == {"Authorization": "Bearer k2"}
    assert provider_headers("anthropic_messages", "k3") == {
        "anthropic-version": "2023-06-01",
        "x-api-key": "k3",
    }
    assert provider_headers("chat_completions", None) == {}
    assert provider_headers("anthropic_messages", None) == {"anthropic-version": "2023-06-01"}


def test_a_secret_quoted_back_by_a_provider_is_redacted() -> None:
    message = "HTTP 401: Incorrect API key provided: sk-live-123456"

    assert redact(message, "sk-live-123456") == "HTTP 401: Incorrect API key provided: ***"
    assert redact(message, None) == message


def test_a_forced_tool_call_finishes_with_tool_calls() -> None:
    answer = Answer()
    draft = answer.tool_call(0)
    draft.take(call_id="call_1", name="search")
    answer.finish("stop", "stop")

    outputs, _ = answer.outputs()
    assert outputs["finish_reason"] == "tool_calls"
    assert outputs["tool_calls"] == [{"id": "call_1", "name": "search", "arguments": {}}]
