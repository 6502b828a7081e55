"""NATS subjects, stream names and KV bucket names: the wire addresses every service shares.

Events are addressed by owner first, so a tenant's events are one subtree:
`flowstream.events.<owner>.<workflow_id>.<run_id>.<event>`. Engines never publish there directly:
they publish to the same address under `flowstream.ingest`, the event stream stores the message
under `flowstream.events` (a subject transform) and republishes what it stored to core
subscribers. So a subscriber of `flowstream.events.<owner>.>` sees exactly the stored events,
each with its stream sequence (`Nats-Sequence`), and never an event the stream refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

RUNS_STREAM = "FLOWSTREAM_RUNS"
# One subject per run command, `flowstream.runs.submit.<band>.<owner>.<run_id>`: engines pull
# each priority band from its own consumer (highest first), a waiting command is found by its
# run id (queue position, reprioritising) and an owner's queue is one subject filter (ADR 0035).
SUBMIT_PREFIX = "flowstream.runs.submit"
ALL_SUBMIT = f"{SUBMIT_PREFIX}.>"
# Commands queued before priority bands existed (`flowstream.runs.submit.<run_id>`): the
# consumer `engine` keeps serving them, as the lowest band, so an upgrade loses no run.
LEGACY_SUBMIT = f"{SUBMIT_PREFIX}.*"
PRIORITY_BANDS = 10  # priority 0 (lowest) .. 9 (highest), one band each
DEFAULT_PRIORITY = 0
# A core message without payload after each queued command: an idle engine wakes on it instead
# of polling its consumers (`flowstream.runs.ready.<band>`).
READY_PREFIX = "flowstream.runs.ready"
ALL_READY = f"{READY_PREFIX}.*"

EVENTS_STREAM = "FLOWSTREAM_EVENTS"
EVENTS_PREFIX = "flowstream.events"
ALL_EVENTS = f"{EVENTS_PREFIX}.>"
INGEST_PREFIX = "flowstream.ingest"
ALL_INGEST = f"{INGEST_PREFIX}.>"
# One marker per engine attempt at a run, stored in the event stream: the events of an attempt
# are accepted only while its marker is the run's latest (ADR 0011).
CLAIMS_PREFIX = "flowstream.claims"
ALL_CLAIMS = f"{CLAIMS_PREFIX}.*"

# Messages history could not record (unparseable, or for a run without an owner).
DEAD_LETTER_STREAM = "FLOWSTREAM_DEAD_LETTER"
DEAD_LETTER_PREFIX = "flowstream.deadletter"

CONTROL_PREFIX = "flowstream.runs.control"
ALL_CONTROL = f"{CONTROL_PREFIX}.*"
CONTROL_BUCKET = "flowstream_control"

WORKFLOWS_BUCKET = "flowstream_workflows"
API_KEYS_BUCKET = "flowstream_api_keys"
# Who owns a run, so any gateway replica can authorize a stop or an attach without asking another.
RUNS_BUCKET = "flowstream_runs"
# Idempotency-Key → run id, per caller, for a day.
IDEMPOTENCY_BUCKET = "flowstream_idempotency"
# Which engine attempt is executing a run; each key expires unless renewed.
LEASES_BUCKET = "flowstream_leases"
# Stored credentials (key = `<owner token>.<name>`): the gateway writes, the engine reads.
CREDENTIALS_BUCKET = "flowstream_credentials"
# The API registry (`/api/apis`): read and written by the gateway only; runs carry snapshots.
APIS_BUCKET = "flowstream_apis"
# Concurrency limits: one key per limited scope holding the runs that have a slot and the runs
# waiting for one (compare-and-set). Engines read and write; gateways read (queue positions).
SLOTS_BUCKET = "flowstream_slots"
# Rate limits (fixed windows) and the concurrent-run quota: gateways read and write; engines
# remove a finished run from the quota.
RATES_BUCKET = "flowstream_rates"
# Result cache entries (key = `<owner token>.<cache key hash>`): engines write after a run
# succeeds, gateways read.
RESULTS_BUCKET = "flowstream_results"

HISTORY_PREFIX = "flowstream.history"
ALL_HISTORY = f"{HISTORY_PREFIX}.*"

ENGINE_CONSUMER = "engine"  # the legacy band (commands without a band token)
HISTORY_CONSUMER = "history"

_OWNER_TOKEN_CHARS = 32


def owner_token(user_id: str) -> str:
    """The NATS-safe subject token of an owner: the first 128 bits of SHA-256(user id), in hex.

    User ids may hold dots, wildcards or spaces, which a subject token cannot; a hash also keeps
    one tenant's subtree from being guessed into another's.
    """
    return hashlib.sha256(user_id.encode()).hexdigest()[:_OWNER_TOKEN_CHARS]


@dataclass(frozen=True, slots=True)
class RunAddress:
    """Where a run's events live: its owner's token, its workflow and its id."""

    owner: str
    workflow_id: str
    run_id: str

    @classmethod
    def of(cls, user_id: str, workflow_id: str, run_id: str) -> RunAddress:
        return cls(owner_token(user_id), workflow_id, run_id)

    def event_subject(self, event: str) -> str:
        return f"{EVENTS_PREFIX}.{self.owner}.{self.workflow_id}.{self.run_id}.{event}"

    def ingest_subject(self, event: str) -> str:
        """What an engine publishes to; the stream stores it as :meth:`event_subject`."""
        return f"{INGEST_PREFIX}.{self.owner}.{self.workflow_id}.{self.run_id}.{event}"

    @property
    def events_filter(self) -> str:
        """Every stored event of the run."""
        return self.event_subject("*")

    @property
    def claim_subject(self) -> str:
        return claim_subject(self.run_id)


@dataclass(frozen=True, slots=True)
class EventAddress:
    run: RunAddress
    event: str


def parse_event_subject(subject: str) -> EventAddress | None:
    """The address of a stored event subject; None for anything else."""
    parts = subject.split(".")
    if len(parts) != 6 or f"{parts[0]}.{parts[1]}" != EVENTS_PREFIX:
        return None
    return EventAddress(RunAddress(parts[2], parts[3], parts[4]), parts[5])


def owner_events(owner: str) -> str:
    """Every event of every run of one owner: what a direct subscriber may read."""
    return f"{EVENTS_PREFIX}.{owner}.>"


def workflow_events(owner: str, workflow_id: str) -> str:
    """Every event of one workflow's runs: what an app key's subscriber may read."""
    return f"{EVENTS_PREFIX}.{owner}.{workflow_id}.>"


def check_priority(priority: int) -> int:
    if not 0 <= priority < PRIORITY_BANDS:
        raise ValueError(f"priority must be between 0 and {PRIORITY_BANDS - 1}")
    return priority


def submit_subject(run_id: str, priority: int, owner: str) -> str:
    """Where a run command waits: its priority band, its owner's token, its run id."""
    return f"{SUBMIT_PREFIX}.{check_priority(priority)}.{owner}.{run_id}"


def band_filter(priority: int) -> str:
    """Every command of one priority band: the filter of that band's consumer."""
    return f"{SUBMIT_PREFIX}.{check_priority(priority)}.*.*"


def owner_submissions(owner: str) -> str:
    """Every queued command of one owner, all bands."""
    return f"{SUBMIT_PREFIX}.*.{owner}.*"


def queued_command(run_id: str) -> str:
    """The queued command of one run, whatever its band."""
    return f"{SUBMIT_PREFIX}.*.*.{run_id}"


@dataclass(frozen=True, slots=True)
class SubmitAddress:
    priority: int
    owner: str
    run_id: str


def parse_submit_subject(subject: str) -> SubmitAddress | None:
    parts = subject.split(".")
    if len(parts) != 6 or ".".join(parts[:3]) != SUBMIT_PREFIX or not parts[3].isdigit():
        return None
    return SubmitAddress(int(parts[3]), parts[4], parts[5])


def band_consumer(priority: int) -> str:
    """The durable pull consumer engines share for one band."""
    return f"engine-p{check_priority(priority)}"


def ready_subject(priority: int) -> str:
    return f"{READY_PREFIX}.{priority}"


def claim_subject(run_id: str) -> str:
    return f"{CLAIMS_PREFIX}.{run_id}"


def control_subject(run_id: str) -> str:
    return f"{CONTROL_PREFIX}.{run_id}"


def run_id_of_control_subject(subject: str) -> str:
    return subject[len(CONTROL_PREFIX) + 1 :]


def history_subject(op: str) -> str:
    return f"{HISTORY_PREFIX}.{op}"


def dead_letter_subject(source: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{source}"


def event_msg_id(run_id: str, seq: int) -> str:
    """The `Nats-Msg-Id` of an event: a retried publish is stored once."""
    return f"{run_id}:{seq}"
