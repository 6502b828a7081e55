"""The JSON bodies of `/v1`, key for key as Dify answers them.

Dify always sends every key of an app's parameters, a feature that is off included, and clients
rely on that (`params.file_upload.image.enabled`). flowstream has none of Dify's chat features and
takes no file uploads: each is present and switched off, and every upload limit is 0.
"""

from __future__ import annotations

import json
from typing import Any

from flowstream_shared.commands import RunOwner
from flowstream_shared.inputs import input_declarations

from flowstream_gateway.dify_inputs import user_input_form
from flowstream_gateway.workflows import WorkflowRecord

_OFF = {"enabled": False}


def parameters(workflow: WorkflowRecord) -> dict[str, Any]:
    return {
        "opening_statement": "",
        "suggested_questions": [],
        "suggested_questions_after_answer": dict(_OFF),
        "speech_to_text": dict(_OFF),
        "text_to_speech": {"enabled": False, "voice": "", "language": ""},
        "retriever_resource": dict(_OFF),
        "annotation_reply": dict(_OFF),
        "more_like_this": dict(_OFF),
        "user_input_form": user_input_form(input_declarations(workflow.definition)),
        "sensitive_word_avoidance": {"enabled": False, "type": "", "configs": []},
        "file_upload": {
            "image": {
                "enabled": False,
                "number_limits": 0,
                "detail": "high",
                "transfer_methods": ["remote_url", "local_file"],
            },
        },
        "system_parameters": {
            "file_size_limit": 0,
            "image_file_size_limit": 0,
            "audio_file_size_limit": 0,
            "video_file_size_limit": 0,
            "workflow_file_upload_limit": 0,
        },
    }


def info(workflow: WorkflowRecord) -> dict[str, Any]:
    d = workflow.definition
    return {
        "name": d.name,
        "description": d.description,
        "tags": d.tags,
        "mode": "workflow",
        # The app's author: the workflow's owner, the only name flowstream knows for them.
        "author_name": workflow.user_id,
    }


def site(workflow: WorkflowRecord) -> dict[str, Any]:
    """The web app settings Dify keeps per app; flowstream has no web app per workflow, so these
    are Dify's defaults with the workflow's own name and description."""
    d = workflow.definition
    return {
        "title": d.name,
        "chat_color_theme": None,
        "chat_color_theme_inverted": False,
        "icon_type": "emoji",
        "icon": "🤖",
        "icon_background": "#FFEAD5",
        "icon_url": None,
        "description": d.description,
        "copyright": None,
        "privacy_policy": None,
        "custom_disclaimer": "",
        "default_language": "en-US",
        "show_workflow_steps": True,
        "use_icon_as_answer_icon": False,
    }


def meta() -> dict[str, Any]:
    return {"tool_icons": {}}


def _seconds(value: Any) -> int | None:
    return int(value) if value else None


def run_detail(run: dict[str, Any]) -> dict[str, Any]:
    """A run as `GET /v1/workflows/run/{id}` shows it: `inputs` is a JSON string, as in Dify
    (clients `json.loads` it), with the `sys.` values the run saw."""
    elapsed = run.get("elapsed_ms")
    inputs = dict(run.get("inputs") or {})
    inputs["sys.user_id"] = run.get("end_user") or run.get("user_id")
    inputs["sys.workflow_id"] = run["workflow_id"]
    inputs["sys.workflow_run_id"] = run["id"]
    return {
        "id": run["id"],
        "workflow_id": run["workflow_id"],
        "status": run["status"],
        "inputs": json.dumps(inputs),
        "outputs": run.get("outputs"),
        "error": run.get("error"),
        "total_steps": run.get("total_steps") or 0,
        "total_tokens": run.get("total_tokens") or 0,
        "created_at": _seconds(run.get("created_at")),
        "finished_at": _seconds(run.get("finished_at")),
        "elapsed_time": round(elapsed / 1000, 6) if elapsed is not None else 0.0,
    }


def detail_from_events(
    owner: RunOwner, started: bytes | None, finished: bytes | None
) -> dict[str, Any]:
    """A run's detail from its own `workflow_started` and `workflow_finished` events: what the
    run's stream said, with no wait for the history projection (a Dify client asks for the
    detail right after a blocking run returns). Without `workflow_finished` the run is running."""
    inputs = json.loads(started)["data"]["inputs"] if started is not None else {}
    end = json.loads(finished)["data"] if finished is not None else {}
    return {
        "id": owner.run_id,
        "workflow_id": owner.workflow_id,
        "status": end.get("status", "running"),
        "inputs": json.dumps(inputs),
        "outputs": end.get("outputs"),
        "error": end.get("error"),
        "total_steps": end.get("total_steps", 0),
        "total_tokens": end.get("total_tokens", 0),
        "created_at": int(owner.created_at),
        "finished_at": end.get("finished_at"),
        "elapsed_time": end.get("elapsed_time", 0.0),
    }


def log_entry(run: dict[str, Any]) -> dict[str, Any]:
    end_user = run.get("end_user")
    return {
        "id": run["id"],
        "workflow_run": {**run_detail(run), "version": str(run.get("workflow_version") or "")},
        "created_from": "service-api",
        "created_by_role": "end_user" if end_user else "account",
        "created_by_account": None if end_user else {"id": run.get("user_id")},
        "created_by_end_user": (
            {"id": end_user, "type": "service_api", "is_anonymous": False, "session_id": end_user}
            if end_user
            else None
        ),
        "created_at": _seconds(run.get("created_at")),
    }
