"""The `flowstream` CLI and the Python client against the real stack, as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from flowstream_client import FlowstreamClient, ResumePolicy

from tests.e2e.conftest import Stack
from tests.e2e.cutting_proxy import cutting_proxy
from tests.support import GREET, delay_then_template, history_caught_up, read_run_log

pytestmark = pytest.mark.e2e
FLOWSTREAM = Path(sys.executable).with_name("flowstream")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


async def cli(stack: Stack, user: str, *args: str) -> Result:
    env = {
        **os.environ,
        "FLOWSTREAM_URL": stack.base_url,
        "FLOWSTREAM_TOKEN": stack.token(user),
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        str(FLOWSTREAM), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def new_user() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


async def test_run_by_name_prints_the_streamed_greeting_and_progress(stack: Stack) -> None:
    user = new_user()
    await stack.create_workflow(user, GREET)

    result = await cli(stack, user, "run", "greet", "-i", "name=Ada")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "Hello Ada!" in lines  # the streamed text, on its own line as it arrived
    assert any(line.startswith("▸ Greet (TEMPLATE)") for line in lines)
    assert any(line.startswith("✓ Greet succeeded") for line in lines)
    assert "[####################] 100%" in lines
    assert any(line.startswith("succeeded") for line in lines)
    assert '"answer": "Hello Ada!"' in result.out


async def test_run_exits_non_zero_when_the_run_fails(stack: Stack) -> None:
    user = new_user()
    workflow_id = await stack.create_workflow(user, delay_then_template(30, timeout=1))

    result = await cli(stack, user, "run", workflow_id, "-i", "name=Ada")

    assert result.code == 1
    assert "failed" in result.out
    assert "timed out" in result.out


async def test_run_refuses_bad_input_before_running(stack: Stack) -> None:
    user = new_user()
    await stack.create_workflow(user, GREET)

    missing = await cli(stack, user, "run", "greet")
    unknown = await cli(stack, user, "run", "no-such-workflow", "-i", "name=Ada")

    assert missing.code == 2
    assert "name is required" in missing.err
    assert unknown.code == 2
    assert "no workflow with id or name 'no-such-workflow'" in unknown.err


async def test_push_creates_then_versions_and_pull_gives_the_definition_back(
    stack: Stack, tmp_path: Path
) -> None:
    user = new_user()
    source = tmp_path / "greet.yaml"
    source.write_text(yaml.safe_dump(GREET))

    first = await cli(stack, user, "workflows", "push", str(source))
    again = await cli(stack, user, "workflows", "push", str(source))
    source.write_text(yaml.safe_dump({**GREET, "description": "Says hello, again"}))
    second = await cli(stack, user, "workflows", "push", str(source))
    pulled = tmp_path / "pulled.json"
    pull = await cli(stack, user, "workflows", "pull", "greet", "-o", str(pulled))

    assert first.code == 0, first.err
    assert first.out.startswith("created greet ")
    assert again.out.startswith("unchanged greet ")
    assert again.out.rstrip().endswith("version 1")
    assert second.code == 0, second.err
    assert second.out.startswith("updated greet ")
    assert second.out.rstrip().endswith("version 2")
    assert pull.code == 0, pull.err
    workflow_id = first.out.split()[2]
    async with stack.client(user) as client:
        exported = (await client.get(f"/api/workflows/{workflow_id}/export")).json()
    assert json.loads(pulled.read_text()) == exported


async def test_runs_cancel_attach_show_and_list(stack: Stack) -> None:
    user = new_user()
    workflow_id = await stack.create_workflow(user, delay_then_template(60))
    async with stack.client(user) as client:
        started = await client.post(
            "/api/executions", json={"workflow_id": workflow_id, "inputs": {}}
        )
    run_id = started.json()["id"]

    cancel = await cli(stack, user, "runs", "cancel", run_id)
    attach = await cli(stack, user, "runs", "attach", run_id)

    assert cancel.code == 0, cancel.err
    assert attach.code == 1  # the run it followed did not succeed
    assert "stopped" in attach.out
    log = await read_run_log(stack.nats_url, run_id)
    assert log[-1]["data"]["status"] == "stopped"
    await history_caught_up(stack.nats_url)
    show = await cli(stack, user, "runs", "show", run_id)
    listed = await cli(stack, user, "runs", "list", "--status", "stopped")
    assert show.code == 0, show.err
    assert "stopped" in show.out
    assert "wait" in show.out
    assert listed.code == 0, listed.err
    assert run_id in listed.out


async def test_the_python_client_resumes_a_stream_cut_mid_frame(stack: Stack) -> None:
    user = new_user()
    workflow_id = await stack.create_workflow(user, delay_then_template(0.5))
    port = int(stack.base_url.rsplit(":", 1)[1])
    async with cutting_proxy(port, b"POST /api/workflow/", b'"node_type":"DELAY"') as proxy:

        def run() -> list[int | None]:
            policy = ResumePolicy(initial_delay_s=0.1)
            with FlowstreamClient(proxy.url, stack.token(user), resume=policy) as client:
                events = list(client.stream(workflow_id, {"name": "Ada"}))
            assert events[-1].event == "workflow_finished"
            assert events[-1].data["status"] == "succeeded"
            return [e.seq for e in events]

        seqs = await asyncio.to_thread(run)

    assert proxy.cut.is_set()
    assert seqs == list(range(1, len(seqs) + 1))
    assert any(r.startswith(b"GET /api/executions/") for r in proxy.requests)
