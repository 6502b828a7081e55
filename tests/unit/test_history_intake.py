"""What history accepts from the event stream, message by message (no NATS needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flowstream_history.intake import (
    Candidate,
    Reason,
    Rejected,
    claimed_owners,
    inspect,
    owner_mismatch,
)
from flowstream_history.projection import Owner
from flowstream_shared.subjects import RunAddress
from nats.aio.msg import Msg

RUN = "0b7d3f56-3c1e-4c44-9d1c-2f1f6b3c9a11"


def _started(run_id: str = RUN, user_id: str | None = "alice") -> dict[str, Any]:
    return {
        "event": "workflow_started",
        "workflow_run_id": run_id,
        "task_id": "t-1",
        "seq": 1,
        "data": {
            "id": run_id,
            "workflow_id": "wf",
            "workflow_version": 1,
            "inputs": {},
            "created_at": 1,
            "user_id": user_id,
        },
    }


def _message(payload: bytes | dict[str, Any], owner: str = "alice", event: str = "") -> Msg:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    name = event or (payload["event"] if isinstance(payload, dict) else "text_chunk")
    subject = RunAddress.of(owner, "wf", RUN).event_subject(name)
    return Msg(_client=None, subject=subject, data=data)  # type: ignore[arg-type]


def test_an_event_that_agrees_with_its_subject_is_a_candidate() -> None:
    found = inspect(_message(_started()))
    assert isinstance(found, Candidate)
    assert found.run_id == RUN and found.address.run.workflow_id == "wf"
    assert found.delivered().payload == json.dumps(_started()).encode()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (_message(b"\x00junk"), Reason.UNPARSEABLE),
        (_message(b'{"event": "workflow_started"}', event="workflow_started"), Reason.UNPARSEABLE),
        (_message({**_started(), "event": "no_such_event"}), Reason.UNPARSEABLE),
        (_message(_started(run_id="another-run")), Reason.RUN_MISMATCH),
        (_message(_started(), event="text_chunk"), Reason.EVENT_MISMATCH),
    ],
)
def test_what_cannot_be_recorded_is_rejected_with_its_reason(message: Msg, reason: Reason) -> None:
    found = inspect(message)
    assert isinstance(found, Rejected) and found.reason == reason
    assert "\n" not in found.detail and len(found.detail) <= 240


def test_a_subject_that_is_no_event_subject_is_unparseable() -> None:
    message = Msg(_client=None, subject="flowstream.events.x", data=b"{}")  # type: ignore[arg-type]
    found = inspect(message)
    assert isinstance(found, Rejected) and found.reason == Reason.UNPARSEABLE


def test_the_owner_token_must_be_the_run_owners() -> None:
    mine = inspect(_message(_started()))
    forged = inspect(_message(_started(), owner="mallory"))
    assert isinstance(mine, Candidate) and isinstance(forged, Candidate)
    assert owner_mismatch(mine, Owner("alice")) is None
    rejected = owner_mismatch(forged, Owner("alice"))
    assert rejected is not None and rejected.reason == Reason.OWNER_MISMATCH


def test_a_start_event_claims_its_owner_only_under_that_owners_token() -> None:
    honest = inspect(_message(_started()))
    lying = inspect(_message(_started(user_id="alice"), owner="mallory"))
    silent = inspect(_message(_started(user_id=None)))
    assert isinstance(honest, Candidate) and isinstance(lying, Candidate)
    assert isinstance(silent, Candidate)
    assert claimed_owners([honest]) == {RUN: "alice"}
    assert claimed_owners([lying]) == {}
    assert claimed_owners([silent]) == {}
