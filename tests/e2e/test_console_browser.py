"""The web console in a real Chromium (Debian's, driven by playwright-core) against the stack:
run greet and see "Hello Ada!" stream in, open the finished run's timeline, stop a waiting run,
browse runs and statistics. The browser script is clients/console/browser-tests/console.mjs.

Screenshots go to a temporary directory, or to `FLOWSTREAM_SCREENSHOTS_DIR` when set
(`make screenshots` keeps them in docs/console/).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.node_tools import CHROMIUM, CLIENTS, PLAYWRIGHT, require, run_node
from tests.support import GREET, delay_then_template, read_run_log

pytestmark = pytest.mark.e2e
SCRIPT = CLIENTS / "console" / "browser-tests" / "console.mjs"
SHOTS = ("sign-in", "workflows", "run-greet", "run-timeline", "run-waiting", "run-stopped", "runs")


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    return Path(os.environ.get("FLOWSTREAM_SCREENSHOTS_DIR") or tmp_path).resolve()


async def test_the_console_runs_watches_stops_and_explains_runs(
    stack: Stack, screenshot_dir: Path
) -> None:
    require(PLAYWRIGHT.is_dir(), "playwright-core (npm ci in clients/)")
    require(CHROMIUM.is_file(), f"Chromium ({CHROMIUM})")
    user = f"console-{uuid.uuid4().hex[:8]}"
    greet_id = await stack.create_workflow(user, GREET)
    wait_id = await stack.create_workflow(user, {**delay_then_template(60), "name": "wait"})
    shots = screenshot_dir
    env = {
        "FLOWSTREAM_URL": stack.base_url,
        "FLOWSTREAM_TOKEN": stack.token(user),
        "GREET_ID": greet_id,
        "WAIT_ID": wait_id,
        "SCREENSHOT_DIR": str(shots),
        "CHROMIUM": str(CHROMIUM),
    }

    result = await run_node(SCRIPT, env=env, within_s=110)

    assert result.json_lines(), result.stderr
    seen = result.json_lines()[-1]
    assert seen["ok"], seen.get("error")
    assert result.returncode == 0
    assert seen["pageErrors"] == []
    assert "Hello Ada!" in seen["greetText"]
    assert seen["timeline"][0] == "workflow_started"
    assert seen["timeline"][-1] == "workflow_finished"
    assert set(seen["succeededRows"]) == {"succeeded"}
    assert seen["statsTotal"] >= 1
    # What the browser showed is what happened: checked against the run's own event log.
    greet_log = await read_run_log(stack.nats_url, seen["greetRunId"])
    assert greet_log[-1]["data"]["outputs"] == {"answer": "Hello Ada!"}
    wait_log = await read_run_log(stack.nats_url, seen["waitRunId"])
    assert wait_log[-1]["data"]["status"] == "stopped"
    assert "after" not in {e["data"].get("node_id") for e in wait_log}
    assert seen["waitStatuses"]["wait"] == "stopped"
    assert seen["waitStatuses"]["after"] == "pending"
    for name in SHOTS:
        assert (shots / f"{name}.png").stat().st_size > 0
