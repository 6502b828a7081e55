"""The npm package, built, used as an application would: `createWorkflowAPI(...)
.executeWorkflowStream(...)` against the real stack, including a stream cut in the middle."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.cutting_proxy import cutting_proxy
from tests.node_tools import CLIENTS, ROOT, TS_DIST, require, run_node
from tests.support import GREET, delay_then_template

pytestmark = pytest.mark.e2e
SCRIPT = CLIENTS / "typescript" / "e2e" / "stream-run.mjs"


def _check_whole_run(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Every event once, in order, from `workflow_started` to `workflow_finished`."""
    assert events[0]["event"] == "workflow_started"
    assert events[-1]["event"] == "workflow_finished"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    final: dict[str, Any] = events[-1]["data"]
    return final


async def test_execute_workflow_stream_from_the_built_package(stack: Stack) -> None:
    require(TS_DIST.is_file(), "the built TypeScript client (clients/typescript/dist)")
    user = f"ts-{uuid.uuid4().hex[:8]}"
    workflow_id = await stack.create_workflow(user, GREET)
    env = {"FLOWSTREAM_URL": stack.base_url, "FLOWSTREAM_TOKEN": stack.token(user)}

    result = await run_node(SCRIPT, workflow_id, '{"name": "Ada"}', env=env)

    assert result.returncode == 0, result.stderr
    *events, summary = result.json_lines()
    assert summary == {"done": True, "errors": []}
    final = _check_whole_run(events)
    assert final["status"] == "succeeded"
    assert final["outputs"] == {"answer": "Hello Ada!"}
    chunks = [e["data"]["text"] for e in events if e["event"] == "text_chunk"]
    assert "".join(chunks) == "Hello Ada!"


async def test_a_stream_cut_mid_frame_is_resumed_without_loss_or_repeat(stack: Stack) -> None:
    require(TS_DIST.is_file(), "the built TypeScript client (clients/typescript/dist)")
    user = f"ts-{uuid.uuid4().hex[:8]}"
    workflow_id = await stack.create_workflow(user, delay_then_template(0.5))
    port = int(stack.base_url.rsplit(":", 1)[1])
    async with cutting_proxy(port, b"POST /api/workflow/", b'"node_type":"DELAY"') as proxy:
        env = {"FLOWSTREAM_URL": proxy.url, "FLOWSTREAM_TOKEN": stack.token(user)}
        result = await run_node(SCRIPT, workflow_id, '{"name": "Ada"}', env=env)

    assert proxy.cut.is_set()
    assert result.returncode == 0, result.stderr
    *events, summary = result.json_lines()
    assert summary == {"done": True, "errors": []}
    final = _check_whole_run(events)
    assert final["status"] == "succeeded"
    assert final["outputs"] == {"message": "done"}
    run_id = events[0]["workflow_run_id"]
    attaches = [
        r for r in proxy.requests if r.startswith(f"GET /api/executions/{run_id}/events".encode())
    ]
    assert attaches, "the client did not re-attach"
    assert b"last-event-id: " in attaches[0].lower()


async def test_the_readme_example_runs_as_written(stack: Stack) -> None:
    require(TS_DIST.is_file(), "the built TypeScript client (clients/typescript/dist)")
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```ts\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) <= 10
    user = f"ts-{uuid.uuid4().hex[:8]}"
    workflow_id = await stack.create_workflow(user, GREET)
    code = example.replace("http://127.0.0.1:8080", stack.base_url).replace(
        "<greet id>", workflow_id
    )
    # Inside the npm workspace, so `@flowstream/client` resolves to the built package.
    script = CLIENTS / "node_modules" / ".cache" / f"readme-example-{user}.mjs"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(code)
    try:
        result = await run_node(script, env={"FLOWSTREAM_TOKEN": stack.token(user)})
    finally:
        script.unlink()

    assert result.returncode == 0, result.stderr
    assert result.lines == ["Hello Ada!"]
    assert result.stderr == ""
