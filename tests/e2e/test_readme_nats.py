"""The README's NATS subscriber, run as written against the stack, and the banner's NATS line."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from flowstream_shared import subjects

from tests.e2e.conftest import ROOT, Stack
from tests.support import GREET


def readme_subscriber() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Straight from NATS", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_subscriber_prints_a_users_events(stack: Stack) -> None:
    user = f"reader-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, GREET)
    code = readme_subscriber().replace("http://127.0.0.1:8080", stack.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env={**os.environ, "FLOWSTREAM_TOKEN": stack.token(user)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            subscribed = False
            while not subscribed:  # a run started before it subscribed would be missed
                async with stack.client(user) as client:
                    response = await client.post(
                        f"/api/workflow/{workflow_id}/execute",
                        json={"inputs": {"name": "Ada"}, "response_mode": "blocking"},
                    )
                    assert response.status_code == 200, response.text
                try:
                    first = await asyncio.wait_for(process.stdout.readline(), 2)
                except TimeoutError:
                    continue
                lines.append(first.decode().strip())
                subscribed = True
            while not lines[-1].startswith("workflow_finished"):
                lines.append((await process.stdout.readline()).decode().strip())
    finally:
        process.kill()
        await process.wait()
    assert lines[0] == "workflow_started"
    assert "".join(line.split(" ", 1)[1] for line in lines if line.startswith("text_chunk "))
    assert "text_chunk Hello" in lines


def test_the_banner_says_how_to_subscribe(stack: Stack) -> None:
    nats = next(line for line in stack.banner if line.strip().startswith("NATS:"))
    assert stack.process.nats_address in nats
    assert f"flowstream.events.{subjects.owner_token('dev')}.>" in nats
