"""What a submission's 503 says when its writes did not all succeed.

The run command and the run's index entry are written at once. When the command was stored
but the index entry failed, the run will start: the answer must say it may, and that retrying
with the same Idempotency-Key gets this run, never that the run could not be queued.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from flowstream_gateway.errors import ApiError
from flowstream_gateway.runs import RunService
from flowstream_shared.commands import RunCommand, WorkflowSnapshot
from flowstream_shared.workflow import WorkflowDefinition
from nats.js.errors import ServerError

DEFINITION = {
    "name": "w",
    "nodes": [
        {"id": "start", "type": "START", "config": {"inputs": []}},
        {"id": "end", "type": "END", "config": {"outputs": {}}},
    ],
    "connections": [{"from": "start", "to": "end"}],
}


class _Queue:
    def __init__(self, failure: Exception | None) -> None:
        self.failure = failure
        self.published: list[str] = []

    async def publish(self, subject: str, payload: bytes, **_: Any) -> object:
        if self.failure is not None:
            raise self.failure
        self.published.append(subject)
        return object()


class _Index:
    def __init__(self, failure: Exception | None) -> None:
        self.failure = failure

    async def put(self, key: str, value: bytes) -> int:
        if self.failure is not None:
            raise self.failure
        return 1


class _Core:
    async def publish(self, subject: str, payload: bytes) -> None:
        return None


def _service(queue: _Queue, index: _Index) -> RunService:
    service = RunService.__new__(RunService)  # only the writes of a submission are exercised
    service._js = queue  # type: ignore[assignment]
    service._runs_kv = index  # type: ignore[assignment]
    service._nc = _Core()  # type: ignore[assignment]
    return service


def _command() -> RunCommand:
    now = time.time()
    return RunCommand(
        run_id=str(uuid.uuid4()),
        task_id=str(uuid.uuid4()),
        workflow=WorkflowSnapshot(
            workflow_id="wf", version=1, definition=WorkflowDefinition.model_validate(DEFINITION)
        ),
        inputs={},
        user_id="u",
        created_at=now,
        deadline=now + 30,
    )


async def test_a_queued_run_whose_index_entry_failed_may_still_start() -> None:
    queue = _Queue(None)
    command = _command()
    with pytest.raises(ApiError) as refused:
        await _service(queue, _Index(ServerError(code=500, description="cluster error")))._submit(
            command, None, None
        )
    assert queue.published == [command.subject]
    assert refused.value.status == 503
    assert "may still start" in refused.value.message
    assert "Idempotency-Key" in refused.value.message


async def test_a_command_the_queue_refused_is_not_queued() -> None:
    failure = ServerError(code=500, description="cluster error")
    with pytest.raises(ApiError) as refused:
        await _service(_Queue(failure), _Index(None))._submit(_command(), None, None)
    assert refused.value.status == 503
    assert refused.value.message.startswith("could not queue the run")
