"""Dify's Node SDK (npm `dify-client` 2.3.2, tests/sdk/dify-node) against the whole stack.

The suite itself is JavaScript (`node --test`), written as a Dify user's app is; this test starts
it against the e2e stack with the apps it needs and fails with its report when any check fails.
`make test` installs the suite's packages from its lock file (`make sdk`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.dify_support import app
from tests.support import delay_then_template, grade, history_caught_up

SUITE = ROOT / "tests" / "sdk" / "dify-node"


async def test_difys_node_sdk_suite_passes(stack: Stack) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the Dify Node SDK suite"
    assert (SUITE / "node_modules" / "dify-client").is_dir(), "run `make sdk` first"
    _, grade_key = await app(stack, "alice", grade())
    _, slow_key = await app(stack, "alice", delay_then_template(60))
    _, short_key = await app(stack, "alice", delay_then_template(0.5))
    async with stack.client(key=grade_key) as client:
        ran = await client.post(
            "/v1/workflows/run",
            json={"inputs": {"score": 90, "verified": True}, "user": "node-logs"},
        )
        assert ran.status_code == 200, ran.text
    await history_caught_up(stack.nats_url)  # the logs test reads this run from history

    env = {
        **os.environ,
        "FLOWSTREAM_URL": stack.base_url,
        "DIFY_GRADE_KEY": grade_key,
        "DIFY_SLOW_KEY": slow_key,
        "DIFY_SHORT_KEY": short_key,
        "DIFY_FINISHED_RUN": json.dumps({"id": ran.json()["workflow_run_id"], "user": "node-logs"}),
    }
    process = await asyncio.create_subprocess_exec(
        node, "--test", "--test-reporter=tap", "dify.test.js",
        cwd=SUITE, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=100)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    assert "\n# fail 0" in report and "\n# pass 6" in report, report
