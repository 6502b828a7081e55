"""The `/v1` service API, held to Dify's wire format."""

from __future__ import annotations

from tests.e2e.conftest import Stack
from tests.support import GREET, sse_frames


async def _app_key(stack: Stack) -> tuple[str, str]:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        key: str = (await client.post("/api/keys", json={"workflow_id": workflow_id})).json()["key"]
    return workflow_id, key


async def test_streaming_uses_dify_framing(stack: Stack) -> None:
    _, key = await _app_key(stack)
    body = {"inputs": {"name": "Ann"}, "response_mode": "streaming", "user": "end-user-7"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        assert response.status_code == 200
        raw = (await response.aread()).decode()
    assert "[DONE]" not in raw and "\nid: " not in raw and not raw.startswith("id: ")
    blocks = [b for b in raw.split("\n\n") if b.strip() and b != "event: ping"]
    assert all(b.startswith("data: {") and "\n" not in b for b in blocks)
    events = [__import__("json").loads(b[len("data: ") :]) for b in blocks]
    assert all(list(e)[:4] == ["event", "workflow_run_id", "task_id", "data"] for e in events)
    assert events[0]["event"] == "workflow_started"
    assert events[0]["data"]["inputs"]["sys.user_id"] == "end-user-7"
    assert events[-1]["event"] == "workflow_finished"
    assert events[0]["task_id"] != events[0]["workflow_run_id"]


async def test_blocking_is_the_default_and_matches_dify(stack: Stack) -> None:
    workflow_id, key = await _app_key(stack)
    async with stack.client(key=key) as client:
        response = await client.post(
            "/v1/workflows/run", json={"inputs": {"name": "Ann"}, "user": "u", "extra": "ignored"}
        )
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["task_id", "workflow_run_id", "data"]
    data = body["data"]
    assert data["workflow_id"] == workflow_id and data["status"] == "succeeded"
    assert isinstance(data["elapsed_time"], float) and isinstance(data["finished_at"], int)


async def test_user_is_required_and_inputs_are_checked_before_any_stream(stack: Stack) -> None:
    _, key = await _app_key(stack)
    async with stack.client(key=key) as client:
        no_user = await client.post("/v1/workflows/run", json={"inputs": {"name": "a"}})
        missing = await client.post(
            "/v1/workflows/run",
            json={"inputs": {}, "user": "u", "response_mode": "streaming"},
        )
    assert no_user.status_code == 400 and no_user.json()["code"] == "invalid_param"
    assert "user" in no_user.json()["message"]
    assert missing.status_code == 400
    assert missing.json()["message"] == "name is required in input form"


async def test_run_needs_an_app_key_without_a_workflow_in_the_path(stack: Stack) -> None:
    async with stack.client("alice") as client:
        response = await client.post("/v1/workflows/run", json={"inputs": {}, "user": "u"})
    assert response.status_code == 400 and response.json()["code"] == "not_workflow_app"


async def test_parameters_and_info_describe_the_app(stack: Stack) -> None:
    _, key = await _app_key(stack)
    async with stack.client(key=key) as client:
        parameters = (await client.get("/v1/parameters")).json()
        info = (await client.get("/v1/info")).json()
    assert parameters["user_input_form"][0]["text-input"]["variable"] == "name"
    assert info == {
        "name": "greet",
        "description": "Says hello",
        "tags": ["demo"],
        "mode": "workflow",
    }


async def test_streaming_frames_parse_with_a_plain_sse_reader(stack: Stack) -> None:
    _, key = await _app_key(stack)
    body = {"inputs": {"name": "Ann"}, "response_mode": "streaming", "user": "u"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        frames = [f async for f in sse_frames(response)]
    assert all(f.id is None and f.event is None for f in frames)
