"""The `/v1` service API, held to Dify's wire format."""

from __future__ import annotations

from tests.e2e.conftest import Stack
from tests.support import GREET, history_caught_up, sse_frames


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
        "author_name": "alice",
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


async def test_run_detail_and_logs_match_dify(stack: Stack) -> None:
    workflow_id, key = await _app_key(stack)
    async with stack.client(key=key) as client:
        run_ids = []
        for i, user in enumerate(("eu-a", "eu-b", "eu-a")):
            ran = await client.post(
                "/v1/workflows/run", json={"inputs": {"name": f"L{i}"}, "user": user}
            )
            run_ids.append(ran.json()["workflow_run_id"])
        await history_caught_up(stack.nats_url)

        detail = (await client.get(f"/v1/workflows/run/{run_ids[0]}")).json()
        assert set(detail) == {
            "id", "workflow_id", "status", "inputs", "outputs", "error", "total_steps",
            "total_tokens", "created_at", "finished_at", "elapsed_time",
        }  # fmt: skip
        assert detail["id"] == run_ids[0] and detail["workflow_id"] == workflow_id
        assert detail["status"] == "succeeded" and detail["outputs"] == {"answer": "Hello L0!"}
        assert isinstance(detail["created_at"], int) and isinstance(detail["elapsed_time"], float)
        unknown = await client.get("/v1/workflows/run/00000000-0000-0000-0000-000000000000")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"

        logs = (await client.get("/v1/workflows/logs", params={"limit": 2})).json()
        assert set(logs) == {"page", "limit", "total", "has_more", "data"}
        assert logs["total"] == 3 and logs["has_more"] is True and len(logs["data"]) == 2
        entry = logs["data"][0]
        assert entry["workflow_run"]["id"] == run_ids[2]  # newest first
        assert entry["created_by_end_user"]["session_id"] == "eu-a"
        assert {"id", "workflow_run", "created_from", "created_by_role", "created_at"} <= set(entry)
        page2 = (await client.get("/v1/workflows/logs", params={"limit": 2, "page": 2})).json()
        assert [e["workflow_run"]["id"] for e in page2["data"]] == [run_ids[0]]
        assert page2["has_more"] is False
        by_user = await client.get(
            "/v1/workflows/logs", params={"created_by_end_user_session_id": "eu-b"}
        )
        assert [e["workflow_run"]["id"] for e in by_user.json()["data"]] == [run_ids[1]]
        failed = (await client.get("/v1/workflows/logs", params={"status": "failed"})).json()
        assert failed["total"] == 0
        future = await client.get(
            "/v1/workflows/logs", params={"created_at__after": "2999-01-01T00:00:00Z"}
        )
        assert future.json()["total"] == 0
        bad = await client.get("/v1/workflows/logs", params={"created_at__before": "yesterday"})
        assert bad.status_code == 400 and "created_at__before" in bad.json()["message"]
