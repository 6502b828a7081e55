"""Node.js, the npm workspace and Chromium for the tests that drive the JavaScript clients.

`make test` installs them (`npm ci`, the TypeScript build, Debian's chromium). Run alone, such a
test skips when one is missing; under CI a missing tool is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "clients"
TS_DIST = CLIENTS / "typescript" / "dist" / "index.js"
PLAYWRIGHT = CLIENTS / "node_modules" / "playwright-core"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def require(condition: bool, what: str) -> None:
    if condition:
        return
    message = f"{what} is missing: run `make test` (or `make clients chromium`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def node_binary() -> str:
    node = shutil.which("node")
    require(node is not None, "Node.js")
    assert node is not None
    return node


@dataclass(frozen=True)
class NodeResult:
    returncode: int
    lines: list[str]
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


async def run_node(
    script: Path, *args: str, env: dict[str, str], within_s: float = 90
) -> NodeResult:
    process = await asyncio.create_subprocess_exec(
        node_binary(),
        str(script),
        *args,
        env={**os.environ, **env},
        cwd=script.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), within_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return NodeResult(process.returncode, stdout.decode().splitlines(), stderr.decode())
