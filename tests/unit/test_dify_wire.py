"""The `/v1` translation of events: Dify's node type ids spliced into the bytes, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flowstream_gateway.dify_wire import NODE_TYPED_EVENTS, dify_frame, dify_node_type
from flowstream_shared.events import (
    EVENT_TYPES,
    EventName,
    LoopCompletedData,
    LoopNextData,
    LoopStartedData,
    NodeFinishedData,
    NodeRetryData,
    NodeStartedData,
    NodeStatus,
    TextChunkData,
)
from flowstream_shared.workflow import NodeType
from pydantic import BaseModel

RUN = "4b0e3c8e-7f57-4d7e-9a4f-3f6b3a8d2c11"
TASK = "1e1933b2-e17c-4953-99aa-98f38f5cc8e9"

DIFY_IDS = {
    "START": "start",
    "END": "end",
    "TEMPLATE": "template-transform",
    "API_CALL": "http-request",
    "CONDITION": "if-else",
    "LLM": "llm",
    "LOOP": "loop",
    "DELAY": "delay",
    "PARALLEL": "parallel",
}


def _payload(event: EventName, data: BaseModel) -> bytes:
    model = EVENT_TYPES[event](event=event, workflow_run_id=RUN, task_id=TASK, data=data, seq=3)
    return model.model_dump_json().encode()


def _sent(event: EventName, data: BaseModel) -> Any:
    """The event as a `/v1` client reads it from its frame."""
    frame = dify_frame(event.value, _payload(event, data))
    assert frame.startswith(b"data: {") and frame.endswith(b"}\n\n")
    assert b"\n" not in frame[:-2]
    return json.loads(frame[len(b"data: ") : -2])


def _node_events(node_type: str, title: str = "Node") -> list[tuple[EventName, BaseModel]]:
    node: dict[str, Any] = {
        "id": "e-1",
        "node_id": "n_1",
        "node_type": node_type,
        "title": title,
        "created_at": 1,
    }
    ended: dict[str, Any] = {
        **node,
        "index": 2,
        "inputs": {"node_type": "LLM"},
        "outputs": {"echo": '"node_type":"LLM"'},
        "status": NodeStatus.SUCCEEDED,
        "error": None,
        "elapsed_time": 0.5,
        "finished_at": 2,
    }
    return [
        (
            EventName.NODE_STARTED,
            NodeStartedData(**node, index=2, predecessor_node_id=None, inputs=None),
        ),
        (EventName.NODE_FINISHED, NodeFinishedData(**ended)),
        (EventName.NODE_RETRY, NodeRetryData(**ended, retry_index=1)),
        (EventName.LOOP_STARTED, LoopStartedData(**node)),
        (EventName.LOOP_NEXT, LoopNextData(**node, index=1)),
        (EventName.LOOP_COMPLETED, LoopCompletedData(**ended, steps=3)),
    ]


@pytest.mark.parametrize("node_type", sorted(DIFY_IDS))
def test_every_node_typed_event_carries_difys_id(node_type: str) -> None:
    assert {event.value for event, _ in _node_events(node_type)} == NODE_TYPED_EVENTS
    for event, data in _node_events(node_type):
        translated = _sent(event, data)
        expected = json.loads(_payload(event, data))
        expected["data"]["node_type"] = DIFY_IDS[node_type]
        assert translated == expected  # the node type, and nothing else, changed


def test_every_builtin_node_type_has_a_dify_id() -> None:
    assert {t.value for t in NodeType} == set(DIFY_IDS)
    assert {t: dify_node_type(t) for t in DIFY_IDS} == DIFY_IDS


def test_plugin_node_types_follow_difys_spelling() -> None:
    (event, data), *_ = _node_events("SEND_MAIL")
    assert _sent(event, data)["data"]["node_type"] == "send-mail"


def test_free_text_that_looks_like_a_node_type_is_left_alone() -> None:
    for event, data in _node_events("TEMPLATE", title='say "node_type":"LLM"'):
        translated = _sent(event, data)
        assert translated["data"]["node_type"] == "template-transform"
        assert translated["data"]["title"] == 'say "node_type":"LLM"'
        if event in (EventName.NODE_FINISHED, EventName.NODE_RETRY, EventName.LOOP_COMPLETED):
            assert translated["data"]["inputs"] == {"node_type": "LLM"}
            assert translated["data"]["outputs"] == {"echo": '"node_type":"LLM"'}


def test_events_without_a_node_type_are_sent_as_they_are() -> None:
    payload = _payload(
        EventName.TEXT_CHUNK,
        TextChunkData(text='"node_type":"LLM"', from_variable_selector=["n", "text"]),
    )
    assert dify_frame("text_chunk", payload) == b"data: " + payload + b"\n\n"


@pytest.mark.parametrize(
    "model",
    [
        NodeStartedData,
        NodeFinishedData,
        NodeRetryData,
        LoopStartedData,
        LoopNextData,
        LoopCompletedData,
    ],
)
def test_node_type_comes_before_any_free_form_field(model: type[BaseModel]) -> None:
    # The splice relies on it: only identifiers (no quotes possible) precede `node_type`.
    fields = list(model.model_fields)
    assert fields[: fields.index("node_type")] == ["id", "node_id"]
