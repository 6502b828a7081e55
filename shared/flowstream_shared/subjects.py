"""NATS subjects, stream names and KV bucket names: the wire addresses every service shares."""

from __future__ import annotations

RUNS_STREAM = "FLOWSTREAM_RUNS"
SUBMIT_SUBJECT = "flowstream.runs.submit"

EVENTS_STREAM = "FLOWSTREAM_EVENTS"
EVENTS_PREFIX = "flowstream.events"
ALL_EVENTS = f"{EVENTS_PREFIX}.>"

CONTROL_PREFIX = "flowstream.runs.control"
ALL_CONTROL = f"{CONTROL_PREFIX}.*"
CONTROL_BUCKET = "flowstream_control"

WORKFLOWS_BUCKET = "flowstream_workflows"
API_KEYS_BUCKET = "flowstream_api_keys"
# Who owns a run, so any gateway replica can authorize a stop or an attach without asking another.
RUNS_BUCKET = "flowstream_runs"
# The API registry (`/api/apis`): read and written by the gateway only; runs carry snapshots.
APIS_BUCKET = "flowstream_apis"

HISTORY_PREFIX = "flowstream.history"

ENGINE_CONSUMER = "engine"
HISTORY_CONSUMER = "history"


def event_subject(workflow_id: str, run_id: str, event: str) -> str:
    return f"{EVENTS_PREFIX}.{workflow_id}.{run_id}.{event}"


def run_events_filter(workflow_id: str, run_id: str) -> str:
    """Every event of one run."""
    return f"{EVENTS_PREFIX}.{workflow_id}.{run_id}.*"


def parse_event_subject(subject: str) -> tuple[str, str, str]:
    """Split an event subject into (workflow_id, run_id, event)."""
    _, _, workflow_id, run_id, event = subject.split(".", 4)
    return workflow_id, run_id, event


def control_subject(run_id: str) -> str:
    return f"{CONTROL_PREFIX}.{run_id}"


def history_subject(op: str) -> str:
    return f"{HISTORY_PREFIX}.{op}"


def event_msg_id(run_id: str, seq: int) -> str:
    """The `Nats-Msg-Id` of an event: a retried publish is stored once."""
    return f"{run_id}:{seq}"
