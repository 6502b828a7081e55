"""Starts the stack as `make run` does (the launcher, as a process) and drives it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flowstream_launcher.child_stack import ChildStack, child_stack

from tests.support import make_token

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    process: ChildStack

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def nats_url(self) -> str:
        return self.process.nats_url

    @property
    def secret(self) -> str:
        return self.process.secret

    @property
    def banner(self) -> list[str]:
        return self.process.banner

    def token(self, user: str) -> str:
        return make_token(self.secret, user)

    def client(self, user: str | None = None, key: str | None = None) -> httpx.AsyncClient:
        headers: dict[str, str] = {}
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)

    async def create_workflow(self, user: str, definition: dict[str, Any]) -> str:
        async with self.client(user) as client:
            response = await client.post("/api/workflows", json=definition)
            assert response.status_code == 201, response.text
            workflow_id: str = response.json()["id"]
            return workflow_id


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    # Short keep-alive intervals, so the keep-alive tests need not wait the production 10-15 s.
    env = {"FLOWSTREAM_SSE_KEEPALIVE_S": "1", "FLOWSTREAM_DIFY_PING_S": "1"}
    # One origin browser apps may call from, for the CORS tests.
    env["FLOWSTREAM_CORS_ORIGINS"] = "http://app.test"
    async with child_stack(
        tmp_path_factory.mktemp("flowstream"), cwd=ROOT, extra_env=env
    ) as process:
        yield Stack(process)
