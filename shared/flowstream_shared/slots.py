"""Concurrency limits: which limits a run is subject to, and the slot set of one limit.

A limited scope (a workflow, a user, an app key, a rendered concurrency key) is one key of KV
`flowstream_slots`, holding the runs that have a slot and the runs waiting for one. Engines
change it with compare-and-set (the entry's revision), so every engine and gateway sees the same
count; this module is the pure part: what a run may take, in which order the waiting get theirs,
what a dead engine's slots become (each entry expires unless its holder renews it).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from flowstream_shared.commands import RunCommand
    from flowstream_shared.settings import ConcurrencySettings

_INPUT_REFERENCE = re.compile(r"\{\{\s*input\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render_input_key(template: str, inputs: dict[str, Any]) -> str:
    """`{{input.<name>}}` replaced by the input's value (JSON text for non-strings, empty when
    absent). Definitions allow nothing else in these keys (workflow.py)."""

    def value(match: re.Match[str]) -> str:
        found = inputs.get(match.group(1))
        if found is None:
            return ""
        return found if isinstance(found, str) else _json(found)

    return _INPUT_REFERENCE.sub(value, template)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def key_token(text: str) -> str:
    """A KV-key-safe token for any text (user ids, rendered keys): 128 bits of SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Limit:
    """One concurrency limit a run is subject to."""

    key: str  # the KV key of its slot set
    limit: int
    name: str  # what the caller is told: "max_concurrent_runs of workflow wf-1", say


def command_limits(command: RunCommand, settings: ConcurrencySettings) -> list[Limit]:
    """`run_limits` of a queued run: its workflow's configuration and the process's settings.
    Engines take these slots; the gateway's queue view tells which one a run waits for."""
    config = command.workflow.definition.config
    return run_limits(
        workflow_id=command.workflow.workflow_id,
        user_id=command.user_id,
        app_key=command.app_key,
        inputs=command.inputs,
        max_concurrent_runs=config.max_concurrent_runs,
        concurrency_key=config.concurrency_key,
        concurrency_limit=config.concurrency_limit,
        user_limit=settings.user_max_concurrent_runs,
        app_key_limit=settings.app_key_max_concurrent_runs,
    )


def run_limits(
    *,
    workflow_id: str,
    user_id: str,
    app_key: str | None,
    inputs: dict[str, Any],
    max_concurrent_runs: int | None,
    concurrency_key: str | None,
    concurrency_limit: int,
    user_limit: int,
    app_key_limit: int,
) -> list[Limit]:
    """Every limit of one run, in the fixed order engines take them (so two runs never wait
    for each other's slots in opposite orders). A limit of 0 is no limit."""
    limits: list[Limit] = []
    owner = key_token(user_id)
    if max_concurrent_runs:
        limits.append(
            Limit(
                f"workflow.{owner}.{workflow_id}",
                max_concurrent_runs,
                f"max_concurrent_runs of workflow {workflow_id}",
            )
        )
    if concurrency_key:
        rendered = render_input_key(concurrency_key, inputs)
        limits.append(
            Limit(
                f"key.{owner}.{workflow_id}.{key_token(rendered)}",
                concurrency_limit,
                f"concurrency_limit of key {rendered!r}",
            )
        )
    if app_key and app_key_limit:
        limits.append(
            Limit(f"appkey.{key_token(app_key)}", app_key_limit, "concurrent runs of the app key")
        )
    if user_limit:
        limits.append(Limit(f"user.{owner}", user_limit, "concurrent runs of the user"))
    return limits


class Waiting(BaseModel):
    model_config = ConfigDict(frozen=True)

    priority: int
    created_at: float
    expires_at: float


class SlotSet(BaseModel):
    """The value of one slot-set key. Entries carry their own expiry: a holder renews its slot
    with every heartbeat, so the slots of a killed engine fall free on their own."""

    model_config = ConfigDict(extra="ignore")

    holders: dict[str, float] = Field(default_factory=dict)  # run id → expires at
    waiting: dict[str, Waiting] = Field(default_factory=dict)

    def pruned(self, now: float) -> SlotSet:
        return SlotSet(
            holders={run: until for run, until in self.holders.items() if until > now},
            waiting={run: w for run, w in self.waiting.items() if w.expires_at > now},
        )

    def line(self) -> list[str]:
        """The waiting runs in the order they get slots: higher priority first, then older."""
        return sorted(
            self.waiting,
            key=lambda run: (-self.waiting[run].priority, self.waiting[run].created_at),
        )

    def position(self, run_id: str, limit: int) -> int | None:
        """1 for the next run to get a slot; None when the run is not waiting."""
        if run_id not in self.waiting:
            return None
        return self.line().index(run_id) + 1

    def next_expiry(self) -> float | None:
        times = [*self.holders.values(), *(w.expires_at for w in self.waiting.values())]
        return min(times, default=None)


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    slots: SlotSet
    changed: bool  # whether the entry must be written
    position: int | None = None  # in the waiting line, when not granted


def decide(
    slots: SlotSet,
    run_id: str,
    *,
    limit: int,
    priority: int,
    created_at: float,
    now: float,
    hold_s: float,
    wait_s: float,
) -> Decision:
    """Take a slot for `run_id`, or join (or stay in) the waiting line.

    A run gets a slot when one is free and no waiting run ranks before it, so freed slots go to
    the waiting line in order, whichever engine notices first. A waiting entry is renewed only
    once half its time has passed, so waiting costs a write per `wait_s / 2`, not per wake-up.
    """
    current = slots.pruned(now)
    changed = current != slots
    if run_id in current.holders:
        return Decision(True, current, changed)
    free = limit - len(current.holders)
    me = Waiting(priority=priority, created_at=created_at, expires_at=now + wait_s)
    ahead = sum(
        1
        for other, entry in current.waiting.items()
        if other != run_id and (-entry.priority, entry.created_at) < (-priority, created_at)
    )
    if ahead < free:
        holders = {**current.holders, run_id: now + hold_s}
        waiting = {run: w for run, w in current.waiting.items() if run != run_id}
        return Decision(True, SlotSet(holders=holders, waiting=waiting), True)
    known = current.waiting.get(run_id)
    if known is None or known.expires_at - now < wait_s / 2:
        waiting = {**current.waiting, run_id: me}
        return Decision(
            False, SlotSet(holders=current.holders, waiting=waiting), True, ahead - free + 1
        )
    return Decision(False, current, changed, ahead - free + 1)


def released(slots: SlotSet, run_id: str) -> SlotSet:
    return SlotSet(
        holders={run: until for run, until in slots.holders.items() if run != run_id},
        waiting={run: w for run, w in slots.waiting.items() if run != run_id},
    )


def renewed(slots: SlotSet, run_id: str, until: float) -> SlotSet:
    """The run's slot held longer; a slot that already lapsed is not taken back (another run
    may have it now)."""
    if run_id not in slots.holders:
        return slots
    return SlotSet(holders={**slots.holders, run_id: until}, waiting=slots.waiting)
