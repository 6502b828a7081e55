"""A client that stops reading its stream is dropped after the send timeout; its run goes on.

The client is a plain socket with a small receive buffer that sends its request and reads
nothing: the gateway's writes soon wait on TCP flow control, as with a stalled mobile client.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from flowstream_launcher.child_stack import child_stack

from tests.e2e.conftest import ROOT, Stack
from tests.support import history_caught_up

SEND_TIMEOUT_S = 1.0
LINE = "all work and no play makes a dull run "
REPEATS = 5000
# ~190 KB of input streamed back twenty times by a LOOP's body (each time also carried by the
# node's node_finished): megabytes, far more than the socket buffers between a gateway and a
# client that reads nothing.
CHATTY: dict[str, Any] = {
    "name": "chatty",
    "nodes": [
        {
            "id": "start",
            "type": "START",
            "config": {"inputs": [{"name": "text", "type": "string", "required": True}]},
        },
        {"id": "rep", "type": "LOOP", "config": {"max_iterations": 20}},
        {
            "id": "talk",
            "type": "TEMPLATE",
            "config": {"template": "{{input.text}}", "stream": True},
        },
        {"id": "end", "type": "END", "config": {"outputs": {"rounds": "{{rep.iterations}}"}}},
    ],
    "connections": [
        {"from": "start", "to": "rep", "type": "SEQUENCE"},
        {"from": "rep", "to": "talk", "type": "LOOP"},
        {"from": "talk", "to": "rep", "type": "SEQUENCE"},
        {"from": "rep", "to": "end", "type": "SEQUENCE"},
    ],
}


@pytest.fixture(scope="module")
async def impatient(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = {"FLOWSTREAM_STREAM_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S)}
    async with child_stack(tmp_path_factory.mktemp("slow"), cwd=ROOT, extra_env=env) as process:
        yield Stack(process)


def _stalled_request(base_url: str, path: str, token: str) -> socket.socket:
    address = urlsplit(base_url)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    client.connect((address.hostname or "127.0.0.1", address.port or 80))
    body = json.dumps({"inputs": {"text": LINE * REPEATS}}).encode()
    client.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return client


def _read_to_the_end(client: socket.socket, within_s: float) -> tuple[bytes, bool]:
    """Everything the socket still gives, and whether the server closed it (EOF) in time."""
    client.settimeout(within_s)
    received = bytearray()
    try:
        while chunk := client.recv(65536):
            received += chunk
    except TimeoutError:
        return bytes(received), False
    return bytes(received), True


async def _no_open_stream(api: httpx.AsyncClient) -> None:
    while True:
        metrics = (await api.get("/metrics")).text
        if "\nflowstream_gateway_open_streams 0.0" in metrics:
            return
        await asyncio.sleep(0.2)  # a gauge has no change notification: look again


async def test_a_stalled_reader_is_dropped_and_its_run_goes_on(impatient: Stack) -> None:
    user = f"slow-{uuid.uuid4().hex[:8]}"
    workflow_id = await impatient.create_workflow(user, CHATTY)
    path = f"/api/workflow/{workflow_id}/execute"
    client = await asyncio.to_thread(
        _stalled_request, impatient.base_url, path, impatient.token(user)
    )
    try:
        async with impatient.client(user) as api:

            async def finished() -> dict[str, Any]:
                while True:
                    await history_caught_up(impatient.nats_url)
                    page = await api.get("/api/executions", params={"workflow_id": workflow_id})
                    items = page.json()["items"] if page.status_code == 200 else []
                    if items and items[0]["status"] not in ("pending", "running"):
                        return dict(items[0])

            run = await asyncio.wait_for(finished(), timeout=60)
            # The run finished although its client read nothing: it was not cancelled.
            assert run["status"] == "succeeded", run
            assert str(run["outputs"]["rounds"]) == "20", run
            # The gateway lets the stalled stream go once a write has waited the send timeout.
            await asyncio.wait_for(_no_open_stream(api), timeout=SEND_TIMEOUT_S + 15)
        received, closed = await asyncio.to_thread(_read_to_the_end, client, 10.0)
    finally:
        client.close()
    # The gateway gave up on the stalled stream: the connection ended mid-stream, long before
    # the run's end reached it (without the send timeout the stream waits for the reader and
    # then delivers everything, `[DONE]` included).
    assert closed, f"the stream was kept open ({len(received)} bytes read)"
    assert b"workflow_finished" not in received and b"[DONE]" not in received, len(received)
