"""What history accepts from the event stream: each delivered message is checked before anything
of it is recorded (defence in depth behind NATS permissions; ADR 0015).

A message is recorded only when its subject is a stored event subject, its bytes are a run event,
the event names the run and the event type its subject names, and the subject's owner token is
the token of the run's owner. Everything else is rejected with a reason, dead-lettered and
acknowledged, so it can neither stall the consumer nor reach another tenant's records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from flowstream_shared.events import RunEventBase, WorkflowFinished, WorkflowStarted, parse_event
from flowstream_shared.subjects import EventAddress, owner_token, parse_event_subject
from nats.aio.msg import Msg
from pydantic import ValidationError

from flowstream_history.projection import Delivered, Owner

_DETAIL_CHARS = 240


class Reason(StrEnum):
    """Why a message was dead-lettered (the `reason` label of the metric, and a header)."""

    UNPARSEABLE = "unparseable"  # not a stored event subject, or not a run event
    RUN_MISMATCH = "run_mismatch"  # its `workflow_run_id` is not its subject's run
    EVENT_MISMATCH = "event_mismatch"  # its `event` is not its subject's event
    OWNER_MISMATCH = "owner_mismatch"  # its subject's owner token is not the run owner's
    OWNER_UNKNOWN = "owner_unknown"  # no owner found by its last delivery


@dataclass(frozen=True, slots=True)
class Candidate:
    """A message that parses and agrees with its subject; its owner is checked next."""

    message: Msg
    address: EventAddress
    event: RunEventBase

    @property
    def run_id(self) -> str:
        return self.event.workflow_run_id

    def delivered(self) -> Delivered:
        return Delivered(self.address.run.workflow_id, self.event, self.message.data)


@dataclass(frozen=True, slots=True)
class Rejected:
    message: Msg
    reason: Reason
    detail: str


owner_token_of = lru_cache(maxsize=65_536)(owner_token)


def _detail(text: str) -> str:
    """One short header-safe line."""
    return " ".join(text.split())[:_DETAIL_CHARS]


def inspect(message: Msg) -> Candidate | Rejected:
    address = parse_event_subject(message.subject)
    if address is None:
        return Rejected(message, Reason.UNPARSEABLE, f"not an event subject: {message.subject}")
    try:
        event = parse_event(message.data)
    except ValidationError as exc:
        errors = exc.errors()
        first = (
            f"{'.'.join(str(p) for p in errors[0]['loc'])}: {errors[0]['msg']}" if errors else ""
        )
        return Rejected(message, Reason.UNPARSEABLE, _detail(first or "not a run event"))
    if event.workflow_run_id != address.run.run_id:
        return Rejected(
            message,
            Reason.RUN_MISMATCH,
            _detail(f"workflow_run_id {event.workflow_run_id} under run {address.run.run_id}"),
        )
    if event.event.value != address.event:
        return Rejected(
            message, Reason.EVENT_MISMATCH, _detail(f"{event.event.value} under {address.event}")
        )
    return Candidate(message, address, event)


def claimed_owners(candidates: Iterable[Candidate]) -> dict[str, str]:
    """Run id → the user id a run's own start or end event names, when its subject carries
    that user's token: an owner for runs nothing else knows (no gateway submitted them)."""
    claims: dict[str, str] = {}
    for candidate in candidates:
        event = candidate.event
        if (
            isinstance(event, WorkflowStarted | WorkflowFinished)
            and event.data.user_id
            and owner_token_of(event.data.user_id) == candidate.address.run.owner
        ):
            claims.setdefault(candidate.run_id, event.data.user_id)
    return claims


def owner_mismatch(candidate: Candidate, owner: Owner) -> Rejected | None:
    if owner_token_of(owner.user_id) == candidate.address.run.owner:
        return None
    return Rejected(
        candidate.message,
        Reason.OWNER_MISMATCH,
        f"owner token {candidate.address.run.owner} is not the run owner's",
    )
