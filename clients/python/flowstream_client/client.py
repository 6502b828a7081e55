"""`FlowstreamClient`: workflows, runs and their live events over the gateway's HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import quote

import httpx

from flowstream_client.errors import FlowstreamError, connection_error, error_from_response
from flowstream_client.events import RunEvent
from flowstream_client.stream import ResumePolicy, attach_path, follow_run

DEFAULT_URL = "http://127.0.0.1:8080"
JsonObject = dict[str, Any]


def _segment(value: str) -> str:
    return quote(value, safe="")


class FlowstreamClient:
    """A synchronous client; use it as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        resume: ResumePolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Streams wait between events for as long as a run takes: no read timeout on them.
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )
        self._resume = resume or ResumePolicy()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlowstreamClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- plain requests -------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise connection_error(exc) from exc
        if not response.is_success:
            raise error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    # -- workflows ------------------------------------------------------------------------

    def list_workflows(
        self, q: str | None = None, tag: str | None = None, page: int = 1, size: int = 100
    ) -> JsonObject:
        params = {k: v for k, v in {"q": q, "tag": tag, "page": page, "size": size}.items() if v}
        return cast(JsonObject, self._json("GET", "/api/workflows", params=params))

    def get_workflow(self, workflow_id: str, version: int | None = None) -> JsonObject:
        params = {"version": version} if version else {}
        path = f"/api/workflows/{_segment(workflow_id)}"
        return cast(JsonObject, self._json("GET", path, params=params))

    def find_workflow(self, id_or_name: str) -> JsonObject:
        """A workflow by id, else by exact name; a name shared by several is an error."""
        try:
            return self.get_workflow(id_or_name)
        except FlowstreamError as exc:
            if exc.status != 404:
                raise
        found = self.workflows_named(id_or_name)
        if not found:
            raise FlowstreamError("not_found", f"no workflow with id or name {id_or_name!r}", 404)
        if len(found) > 1:
            ids = ", ".join(item["id"] for item in found)
            raise FlowstreamError(
                "ambiguous", f"{len(found)} workflows are named {id_or_name!r}: {ids}", 409
            )
        return self.get_workflow(found[0]["id"])

    def workflows_named(self, name: str) -> list[JsonObject]:
        matches: list[JsonObject] = []
        page = 1
        while True:
            listing = self.list_workflows(q=name, page=page)
            matches += [item for item in listing["items"] if item["name"] == name]
            if page >= listing["pages"]:
                return matches
            page += 1

    def create_workflow(self, definition: JsonObject) -> JsonObject:
        return cast(JsonObject, self._json("POST", "/api/workflows", json=definition))

    def update_workflow(self, workflow_id: str, definition: JsonObject) -> JsonObject:
        path = f"/api/workflows/{_segment(workflow_id)}"
        return cast(JsonObject, self._json("PUT", path, json=definition))

    def export_workflow(self, workflow_id: str, version: int | None = None) -> JsonObject:
        params = {"version": version} if version else {}
        path = f"/api/workflows/{_segment(workflow_id)}/export"
        return cast(JsonObject, self._json("GET", path, params=params))

    def workflow_stats(self, workflow_id: str) -> JsonObject:
        path = f"/api/workflows/{_segment(workflow_id)}/stats"
        return cast(JsonObject, self._json("GET", path))

    # -- runs -----------------------------------------------------------------------------

    def stream(
        self,
        workflow_id: str,
        inputs: JsonObject,
        *,
        version: int | None = None,
        on_disconnect: Literal["continue", "cancel"] = "continue",
    ) -> Iterator[RunEvent]:
        """Runs a workflow and yields its events as they happen, resuming dropped streams.

        With `on_disconnect="continue"` (the default) a lost connection does not stop the run,
        so it can be resumed; stop the run with `cancel()` (the CLI does on Ctrl-C).
        """
        body: JsonObject = {
            "inputs": inputs,
            "response_mode": "streaming",
            "on_disconnect": on_disconnect,
        }
        if version is not None:
            body["version"] = version
        path = f"/api/workflow/{_segment(workflow_id)}/execute"
        return follow_run(
            lambda: self._open("POST", path, json=body),
            self._reattach,
            policy=self._resume,
        )

    def attach(self, run_id: str, last_event_id: str | None = None) -> Iterator[RunEvent]:
        """A run's events from its start, or after `last_event_id`; leaving never stops it."""
        return follow_run(
            lambda: self._reattach(attach_path(_segment(run_id)), last_event_id),
            self._reattach,
            run_id=run_id,
            last_event_id=last_event_id,
            policy=self._resume,
        )

    def execute(
        self, workflow_id: str, inputs: JsonObject, version: int | None = None
    ) -> JsonObject:
        """Runs a workflow and waits for its end (`response_mode: "blocking"`)."""
        body: JsonObject = {"inputs": inputs, "response_mode": "blocking"}
        if version is not None:
            body["version"] = version
        path = f"/api/workflow/{_segment(workflow_id)}/execute"
        return cast(JsonObject, self._json("POST", path, json=body, timeout=None))

    def cancel(self, run_id: str) -> None:
        self._request("POST", f"/api/executions/{_segment(run_id)}/cancel")

    def pause(self, run_id: str) -> None:
        self._request("POST", f"/api/executions/{_segment(run_id)}/pause")

    def resume(self, run_id: str) -> None:
        self._request("POST", f"/api/executions/{_segment(run_id)}/resume")

    def list_runs(
        self,
        workflow_id: str | None = None,
        status: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        page: int = 1,
        size: int = 20,
    ) -> JsonObject:
        params = {
            "workflow_id": workflow_id,
            "status": status,
            "created_after": created_after,
            "created_before": created_before,
            "page": page,
            "size": size,
        }
        query = {k: v for k, v in params.items() if v is not None}
        return cast(JsonObject, self._json("GET", "/api/executions", params=query))

    def get_run(self, run_id: str) -> JsonObject:
        return cast(JsonObject, self._json("GET", f"/api/executions/{_segment(run_id)}"))

    def timeline(self, run_id: str) -> list[JsonObject]:
        path = f"/api/executions/{_segment(run_id)}/history"
        return cast(list[JsonObject], self._json("GET", path))

    # -- streaming plumbing ---------------------------------------------------------------

    def _open(
        self, method: str, path: str, **kwargs: Any
    ) -> AbstractContextManager[httpx.Response]:
        headers = {"Accept": "text/event-stream", **kwargs.pop("headers", {})}
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        return self._http.stream(method, path, headers=headers, timeout=timeout, **kwargs)

    def _reattach(
        self, path: str, last_event_id: str | None
    ) -> AbstractContextManager[httpx.Response]:
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        return self._open("GET", path, headers=headers)
