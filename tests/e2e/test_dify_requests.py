"""`/v1` requests and answers as Dify's: inputs, parameters, run detail, stop, CORS, app info."""

from __future__ import annotations

import json

from tests.e2e.conftest import Stack
from tests.e2e.dify_support import ALLOWED_ORIGIN, app, read_until_node_started
from tests.support import GREET, delay_then_template, grade, history_caught_up, read_run_log

PARAMETER_KEYS = {
    "opening_statement", "suggested_questions", "suggested_questions_after_answer",
    "speech_to_text", "text_to_speech", "retriever_resource", "annotation_reply",
    "more_like_this", "sensitive_word_avoidance", "user_input_form", "file_upload",
    "system_parameters",
}  # fmt: skip
SYSTEM_PARAMETER_KEYS = {
    "file_size_limit", "image_file_size_limit", "audio_file_size_limit",
    "video_file_size_limit", "workflow_file_upload_limit",
}  # fmt: skip


async def test_v1_converts_form_strings_as_dify_does_and_api_stays_strict(stack: Stack) -> None:
    workflow_id, key = await app(stack, "alice", grade())
    async with stack.client(key=key) as client:

        async def run(inputs: dict[str, object]) -> dict[str, object]:
            response = await client.post("/v1/workflows/run", json={"inputs": inputs, "user": "u"})
            assert response.status_code == 200, response.text
            data: dict[str, object] = response.json()["data"]
            return data

        assert (await run({"score": "72", "verified": "true"}))["outputs"] == {
            "result": "Passed with 72"
        }
        assert (await run({"score": " 60.5 ", "verified": "ON"}))["outputs"] == {
            "result": "Passed with 60.5"
        }
        for no in ("false", "0", "no", "off"):
            assert (await run({"score": "90", "verified": no}))["outputs"] == {
                "result": "Not passed"
            }
        assert (await run({"score": "90", "verified": 1}))["outputs"] == {
            "result": "Passed with 90"
        }
        not_a_number = await client.post(
            "/v1/workflows/run", json={"inputs": {"score": "7x"}, "user": "u"}
        )
        not_a_flag = await client.post(
            "/v1/workflows/run", json={"inputs": {"score": "7", "verified": "maybe"}, "user": "u"}
        )
    assert not_a_number.status_code == 400
    assert not_a_number.json()["message"] == "score in input form must be a valid number"
    assert not_a_flag.status_code == 400
    assert not_a_flag.json()["message"] == "verified in input form must be a boolean"

    async with stack.client("alice") as client:
        strict = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"score": "72", "verified": "true"}, "response_mode": "blocking"},
        )
    assert strict.status_code == 400 and strict.json()["code"] == "invalid_param"
    assert strict.json()["message"] == "score in input form must be a number"


async def test_parameters_have_every_dify_key_with_features_off(stack: Stack) -> None:
    _, key = await app(stack, "alice", grade())
    async with stack.client(key=key) as client:
        params = (await client.get("/v1/parameters", params={"user": "u"})).json()
    assert set(params) == PARAMETER_KEYS
    assert params["file_upload"]["image"]["enabled"] is False
    assert set(params["system_parameters"]) == SYSTEM_PARAMETER_KEYS
    for feature in (
        "suggested_questions_after_answer", "speech_to_text", "text_to_speech",
        "retriever_resource", "annotation_reply", "more_like_this", "sensitive_word_avoidance",
    ):  # fmt: skip
        assert params[feature]["enabled"] is False
    assert params["user_input_form"] == [
        {"number": {"label": "score", "variable": "score", "required": True, "default": ""}},
        {"checkbox": {"label": "verified", "variable": "verified", "required": False,
                      "default": False}},
    ]  # fmt: skip


async def test_run_detail_has_inputs_as_a_json_string(stack: Stack) -> None:
    workflow_id, key = await app(stack, "alice", grade())
    async with stack.client(key=key) as client:
        ran = await client.post(
            "/v1/workflows/run", json={"inputs": {"score": "61"}, "user": "eu-d"}
        )
        run_id = ran.json()["workflow_run_id"]
        await history_caught_up(stack.nats_url)
        detail = (await client.get(f"/v1/workflows/run/{run_id}")).json()
        logs = (await client.get("/v1/workflows/logs")).json()
    assert isinstance(detail["inputs"], str)
    assert json.loads(detail["inputs"]) == {
        "score": 61,
        "verified": False,
        "sys.user_id": "eu-d",
        "sys.workflow_id": workflow_id,
        "sys.workflow_run_id": run_id,
    }
    assert isinstance(logs["data"][0]["workflow_run"]["inputs"], str)


async def test_run_detail_right_after_a_blocking_run_is_its_result(stack: Stack) -> None:
    _, key = await app(stack, "alice", GREET)
    async with stack.client(key=key) as client:
        for i in range(5):  # no wait for the history projection in between
            ran = await client.post(
                "/v1/workflows/run", json={"inputs": {"name": f"R{i}"}, "user": "eu-r"}
            )
            result = ran.json()
            detail = (await client.get(f"/v1/workflows/run/{result['workflow_run_id']}")).json()
            assert detail["status"] == "succeeded"
            assert detail["outputs"] == result["data"]["outputs"] == {"answer": f"Hello R{i}!"}
            assert json.loads(detail["inputs"])["name"] == f"R{i}"
            assert detail["finished_at"] == result["data"]["finished_at"]


async def test_stop_answers_success_whatever_the_task_and_needs_a_user(stack: Stack) -> None:
    _, key = await app(stack, "alice", GREET)
    async with stack.client(key=key) as client:
        finished = await client.post(
            "/v1/workflows/run", json={"inputs": {"name": "x"}, "user": "eu-s"}
        )
        finished_task = finished.json()["task_id"]
        for task_id in (finished_task, "3b7e9c2a-1f4d-4e8a-9c6b-2d5f8a1e7c40", "not-a-task"):
            stopped = await client.post(
                f"/v1/workflows/tasks/{task_id}/stop", json={"user": "eu-s"}
            )
            assert stopped.status_code == 200 and stopped.json() == {"result": "success"}
        for body in ({}, {"user": ""}, None):
            missing = await client.post(f"/v1/workflows/tasks/{finished_task}/stop", json=body)
            assert missing.status_code == 400 and missing.json()["code"] == "invalid_param"
            assert missing.json()["message"] == "user is required"


async def test_stop_of_a_task_that_is_not_the_callers_changes_nothing(stack: Stack) -> None:
    workflow_id, key = await app(stack, "alice", delay_then_template(1))
    _, mallory_key = await app(stack, "mallory", GREET)
    _, other_app_key = await app(stack, "alice", GREET)
    body = {"inputs": {}, "response_mode": "streaming", "user": "eu-owner"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        event = await read_until_node_started(response, "wait")
        task_id, run_id = event["task_id"], event["workflow_run_id"]
        attempts = [
            (key, "eu-someone-else"),  # the same app, another end user
            (other_app_key, "eu-owner"),  # the same owner, another app
            (mallory_key, "eu-owner"),  # another owner
        ]
        for attempt_key, user in attempts:
            async with stack.client(key=attempt_key) as other:
                stopped = await other.post(
                    f"/v1/workflows/tasks/{task_id}/stop", json={"user": user}
                )
            assert stopped.status_code == 200 and stopped.json() == {"result": "success"}
    events = await read_run_log(stack.nats_url, run_id)
    assert events[-1]["data"]["status"] == "succeeded"
    assert workflow_id == events[-1]["data"]["workflow_id"]


async def test_cors_preflight_on_v1_answers_like_difys(stack: Stack) -> None:
    preflight = {
        "Origin": ALLOWED_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with stack.client() as client:
        answer = await client.options("/v1/workflows/run", headers=preflight)
        api = await client.options("/api/workflows", headers=preflight)
        foreign = await client.options(
            "/v1/workflows/run", headers={**preflight, "Origin": "http://elsewhere.test"}
        )
    for response in (answer, api):
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} <= methods
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "access-control-allow-credentials" not in response.headers
    assert "access-control-allow-origin" not in foreign.headers

    _, key = await app(stack, "alice", GREET)
    async with stack.client(key=key) as client:
        info = await client.get("/v1/info", headers={"Origin": ALLOWED_ORIGIN})
        other = await client.get("/v1/info", headers={"Origin": "http://elsewhere.test"})
    assert info.status_code == 200
    assert info.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in other.headers


async def test_info_meta_and_site_describe_the_app(stack: Stack) -> None:
    _, key = await app(stack, "alice", GREET)
    async with stack.client(key=key) as client:
        info = (await client.get("/v1/info")).json()
        meta = await client.get("/v1/meta")
        site = await client.get("/v1/site")
    assert info["author_name"] == "alice" and info["mode"] == "workflow"
    assert meta.status_code == 200 and meta.json() == {"tool_icons": {}}
    assert site.status_code == 200
    assert site.json()["title"] == "greet" and site.json()["description"] == "Says hello"
    assert {"icon", "icon_type", "default_language", "show_workflow_steps"} <= set(site.json())
