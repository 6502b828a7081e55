"""Example flowstream hooks: report each run's start, each node and each run's end to a webhook.

Installed next to the engine (`pip install ./examples/hooks`), the entry point in the group
`flowstream.hooks` makes the engine call these three functions with the run's own events. Set
`FLOWSTREAM_EXAMPLE_HOOKS_URL`; each call POSTs a small JSON document to `<url>/<hook name>`.
Without the variable the hooks do nothing.

A hook only observes: it runs off the run's path, and if it fails or takes longer than
`FLOWSTREAM_HOOK_TIMEOUT_S` the engine logs it, counts it and goes on.
"""

from __future__ import annotations

import os
from typing import Any

import httpx


class WebhookHooks:
    def __init__(self) -> None:
        self._url = os.environ.get("FLOWSTREAM_EXAMPLE_HOOKS_URL", "").rstrip("/")
        self._client: httpx.AsyncClient | None = None

    async def _post(self, hook: str, document: dict[str, Any]) -> None:
        if not self._url:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        response = await self._client.post(f"{self._url}/{hook}", json=document)
        response.raise_for_status()  # a failure is the engine's to log and count

    async def before_execution(self, event: Any) -> None:
        """`event` is the run's `workflow_started`."""
        await self._post(
            "before_execution",
            {
                "run_id": event.workflow_run_id,
                "workflow_id": event.data.workflow_id,
                "version": event.data.workflow_version,
            },
        )

    async def on_node_execution(self, event: Any) -> None:
        """`event` is a `node_finished`: one per node execution."""
        data = event.data
        await self._post(
            "on_node_execution",
            {
                "run_id": event.workflow_run_id,
                "node_id": data.node_id,
                "node_type": data.node_type,
                "status": data.status,
                "elapsed_time": data.elapsed_time,
            },
        )

    async def after_execution(self, event: Any) -> None:
        """`event` is the run's `workflow_finished`."""
        data = event.data
        await self._post(
            "after_execution",
            {
                "run_id": event.workflow_run_id,
                "status": data.status,
                "elapsed_time": data.elapsed_time,
                "error": data.error,
            },
        )
