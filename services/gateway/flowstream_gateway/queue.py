"""The queue as callers see it: waiting runs, their positions, and moving one between bands.

Everything is read from where it lives, so any replica answers the same: the waiting commands
from the run stream (direct get on `flowstream.runs.submit.*.<owner>.*`, no consumer), how far
each band's consumer has got from its consumer info, and runs an engine holds back for a
concurrency limit from that limit's slot set (KV `flowstream_slots`).

A run is *queued* (for an engine) while its command is beyond its band consumer's delivered
sequence, and *waiting for a limit* while it stands in a slot set's waiting line. Positions
count what an engine takes first: every queued run of a higher band, then the older ones of the
same band (ADR 0035).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.commands import RunCommand
from flowstream_shared.event_log import StoredMessage, last_message, read_messages
from flowstream_shared.settings import ConcurrencySettings
from flowstream_shared.slots import SlotSet, command_limits
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

# How many waiting commands of other callers a position may count past (read by direct get);
# beyond it the position is reported as at least this.
MAX_COUNTED = 5000


@dataclass(frozen=True)
class Bands:
    pending: dict[int, int]  # band → commands no engine has taken yet
    delivered: dict[int, int]  # band → the stream sequence its consumer has reached


async def queue_bands(js: JetStreamContext) -> Bands:
    async def info(band: int) -> tuple[int, int, int]:
        try:
            consumer = await js.consumer_info(subjects.RUNS_STREAM, subjects.band_consumer(band))
        except Exception:
            return band, 0, 0
        return band, int(consumer.num_pending or 0), int(consumer.delivered.stream_seq or 0)

    answers = await asyncio.gather(*(info(b) for b in range(subjects.PRIORITY_BANDS)))
    return Bands({b: p for b, p, _ in answers}, {b: d for b, _, d in answers})


@dataclass(frozen=True)
class QueuedRun:
    message: StoredMessage
    command: RunCommand

    @property
    def band(self) -> int:
        return self.command.priority


def _parse(message: StoredMessage) -> QueuedRun | None:
    address = subjects.parse_submit_subject(message.subject)
    if address is None:
        return None
    try:
        command = RunCommand.model_validate_json(message.data)
    except ValueError:
        return None
    return QueuedRun(message, command.model_copy(update={"priority": address.priority}))


async def find_queued(nc: Client, run_id: str) -> QueuedRun | None:
    message = await last_message(nc, subjects.RUNS_STREAM, subjects.queued_command(run_id))
    return _parse(message) if message is not None else None


async def position_in_band(nc: Client, bands: Bands, queued: QueuedRun) -> int:
    """1 for the next command an engine takes."""
    band, seq = queued.band, queued.message.seq
    ahead = sum(count for b, count in bands.pending.items() if b > band)
    counted = 0
    async for message in read_messages(
        nc, subjects.RUNS_STREAM, subjects.band_filter(band), after_seq=bands.delivered[band]
    ):
        if message.seq >= seq or counted >= MAX_COUNTED:
            break
        counted += 1
    return ahead + counted + 1


class QueueView:
    def __init__(
        self, nc: Client, js: JetStreamContext, slots_kv: KeyValue, settings: ConcurrencySettings
    ) -> None:
        self._nc = nc
        self._js = js
        self._slots_kv = slots_kv
        self._settings = settings

    async def waiting(self, owner: str | None, limit: int = 200) -> list[dict[str, Any]]:
        """The waiting runs of one owner (None: everybody's), in the order they start."""
        subject_filter = (
            subjects.owner_submissions(owner) if owner else f"{subjects.SUBMIT_PREFIX}.*.*.*"
        )
        bands = await queue_bands(self._js)
        runs: list[QueuedRun] = []
        async for message in read_messages(self._nc, subjects.RUNS_STREAM, subject_filter):
            queued = _parse(message)
            if queued is not None:
                runs.append(queued)
            if len(runs) >= limit:
                break
        now = time.time()
        # Highest band first, then in the order submitted: a run an engine holds for a limit
        # was queued before the runs of its band still waiting for an engine, and starts first.
        runs.sort(key=lambda r: (-r.band, r.message.seq))
        entries: list[dict[str, Any]] = []
        for queued in runs:
            if queued.message.seq > bands.delivered[queued.band]:
                position = await position_in_band(self._nc, bands, queued)
                entries.append(self._entry(queued, now, position, "engine"))
                continue
            held = await self.limit_wait(queued.command)
            if held is not None:
                name, position = held
                entries.append(self._entry(queued, now, position, name))
        return entries

    async def describe(self, run_id: str) -> dict[str, Any] | None:
        """A run that has not started, as the queue view shows it; None otherwise."""
        queued = await find_queued(self._nc, run_id)
        if queued is None:
            return None
        bands = await queue_bands(self._js)
        now = time.time()
        if queued.message.seq > bands.delivered[queued.band]:
            position = await position_in_band(self._nc, bands, queued)
            return self._entry(queued, now, position, "engine")
        held = await self.limit_wait(queued.command)
        if held is None:
            return None  # an engine has it: it is starting, or running
        return self._entry(queued, now, held[1], held[0])

    async def limit_wait(self, command: RunCommand) -> tuple[str, int] | None:
        """The limit a picked-up run waits for and its place in that limit's line."""
        for limit in command_limits(command, self._settings):
            try:
                entry = await self._slots_kv.get(limit.key)
            except (KeyNotFoundError, KeyDeletedError):
                continue
            if not entry.value:
                continue
            slots = SlotSet.model_validate_json(entry.value).pruned(time.time())
            position = slots.position(command.run_id, limit.limit)
            if position is not None:
                return limit.name, position
        return None

    @staticmethod
    def _entry(queued: QueuedRun, now: float, position: int, waiting_for: str) -> dict[str, Any]:
        command = queued.command
        return {
            "id": command.run_id,
            "task_id": command.task_id,
            "workflow_id": command.workflow.workflow_id,
            "workflow_version": command.workflow.version,
            "status": "pending",
            "priority": command.priority,
            "position": position,
            "waiting_for": waiting_for,
            "created_at": command.created_at,
            "age_s": round(max(0.0, now - command.created_at), 3),
        }


async def is_picked_up(js: JetStreamContext, queued: QueuedRun) -> bool:
    bands = await queue_bands(js)
    return queued.message.seq <= bands.delivered[queued.band]


async def move_to_band(nc: Client, js: JetStreamContext, queued: QueuedRun, priority: int) -> None:
    """Queue the run's command in another band and remove the old one. Should an engine take
    the old one in between, the new one is a duplicate its claim makes harmless (ADR 0035)."""
    command = queued.command.model_copy(update={"priority": priority})
    await js.publish(
        command.subject,
        command.model_dump_json(by_alias=True).encode(),
        headers={"Nats-Msg-Id": f"{command.run_id}:moved:{queued.message.seq}"},
        stream=subjects.RUNS_STREAM,
    )
    with contextlib.suppress(Exception):  # taken meanwhile: the copy is harmless
        await js.delete_msg(subjects.RUNS_STREAM, queued.message.seq)
    await nc.publish(subjects.ready_subject(priority), b"")
