"""Takes run commands from the priority bands, highest band first, as run slots free up.

Each band (priority 0-9, plus the legacy band of commands queued before bands existed) has its
own durable pull consumer, shared by every engine. With a free run slot the dispatcher asks the
bands in order (`no_wait`: an empty band answers at once), so a waiting higher-priority command
is always taken before a lower one (ADR 0035). One ask takes as many commands of the band as the
engine has free slots (up to `MAX_PULL`): a burst is picked up in a few requests, not one each.

Starvation: a band that had waiting commands while `starvation_limit` commands in a row were
taken from higher bands is served next, so under a constant stream of high-priority runs each
lower band still gets at least one of every `starvation_limit + 1` pickups.

Idle engines do not poll: the gateway publishes a payload-less core message on
`flowstream.runs.ready.<band>` after each queued command, and an idle dispatcher sleeps until
one arrives. Commands that become available without one (a redelivery after a nak's delay or an
expired acknowledgement deadline) are found by a check every `idle_recheck_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flowstream_shared import subjects
from flowstream_shared.commands import RunCommand
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from flowstream_engine.concurrency import RunSlot
from flowstream_engine.metrics import EngineMetrics

log = logging.getLogger(__name__)

LEGACY_BAND = -1
# One ask takes up to this many commands of a band, as many as there are free run slots: a
# burst of submissions costs a request per batch rather than per run.
MAX_PULL = 32

RunHandler = Callable[[RunCommand, Msg, RunSlot], Awaitable[None]]


@dataclass(frozen=True)
class DispatchSettings:
    concurrency: int
    starvation_limit: int = 10
    idle_recheck_s: float = 2.0
    request_timeout_s: float = 5.0


def _consumer(band: int) -> str:
    return subjects.ENGINE_CONSUMER if band == LEGACY_BAND else subjects.band_consumer(band)


class BandOrder:
    """Which band to ask first: the highest, unless a lower one has been passed over too often.

    Pure bookkeeping, so the policy is tested without NATS."""

    def __init__(self, starvation_limit: int) -> None:
        self.bands = [*range(subjects.PRIORITY_BANDS - 1, -1, -1), LEGACY_BAND]
        self._limit = starvation_limit
        self._passed_over = dict.fromkeys(self.bands, 0)
        # Bands that may hold commands: an empty answer removes one, a ready message or the
        # idle check adds it back. Asking only these keeps a pickup to one or two requests.
        self.maybe_waiting = set(self.bands)
        self.generation = dict.fromkeys(self.bands, 0)

    def order(self) -> list[int]:
        starving = [b for b in self.bands if self._passed_over[b] >= self._limit]
        starving.sort(key=lambda b: -self._passed_over[b])
        rest = [b for b in self.bands if b not in starving]
        return [b for b in (*starving, *rest) if b in self.maybe_waiting]

    def served(self, band: int) -> None:
        self._passed_over[band] = 0
        for other in self.bands:
            if other != band and other in self.maybe_waiting and _below(other, band):
                self._passed_over[other] += 1

    def empty(self, band: int, generation: int) -> None:
        """The band answered empty to an ask made at `generation`; a ready message since then
        keeps it on the list (its command was stored after the ask)."""
        if self.generation[band] == generation:
            self.maybe_waiting.discard(band)
            self._passed_over[band] = 0

    def ready(self, band: int) -> None:
        self.generation[band] += 1
        self.maybe_waiting.add(band)

    def all_ready(self) -> None:
        self.maybe_waiting = set(self.bands)


def _below(band: int, other: int) -> bool:
    return band < other  # the legacy band (-1) is below every other


class Dispatcher:
    def __init__(
        self,
        nc: Client,
        handle: RunHandler,
        metrics: EngineMetrics,
        settings: DispatchSettings,
    ) -> None:
        self._nc = nc
        self._handle = handle
        self._metrics = metrics
        self._settings = settings
        self._order = BandOrder(settings.starvation_limit)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready_sub: Subscription | None = None
        self._inboxes: dict[int, Subscription] = {}

    async def start(self) -> None:
        self._ready_sub = await self._nc.subscribe(subjects.ALL_READY, cb=self._on_ready)
        self._loop = asyncio.create_task(self._run_loop())

    async def stop(self) -> None:
        """Hand every run back at once (each handler naks when cancelled)."""
        self._stopping = True
        if self._ready_sub is not None:
            with contextlib.suppress(Exception):
                await self._ready_sub.unsubscribe()
        # The loop and the runs stop together: a loop whose cancellation was swallowed (nats-py
        # turns it into ConnectionClosedError once the connection closes) may wait for a slot,
        # and only a cancelled run frees one. The flag ends the loop then.
        loop = [self._loop] if self._loop is not None else []
        for task in [*loop, *self._tasks]:
            task.cancel()
        self._wake.set()
        await asyncio.gather(*loop, *self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._nc.flush(timeout=2)  # the hand-backs (naks) reach the server first
        for inbox in self._inboxes.values():
            with contextlib.suppress(Exception):
                await inbox.unsubscribe()

    async def _on_ready(self, msg: Msg) -> None:
        band = msg.subject.rsplit(".", 1)[-1]
        if band.isdigit() and int(band) < subjects.PRIORITY_BANDS:
            self._order.ready(int(band))
            self._wake.set()

    async def _run_loop(self) -> None:
        while True:
            await self._slots.acquire()  # idle, the loop holds one slot only
            if self._stopping:
                self._slots.release()
                return
            try:
                msgs, band = await self._next()
            except BaseException:
                self._slots.release()
                raise
            for msg in msgs:  # each holds a slot: the one above, or one `_next` took
                task = asyncio.create_task(self._dispatch(msg, band))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _next(self) -> tuple[list[Msg], int]:
        """The next commands, from the first band that has any: one per slot held on return
        (the caller's one, and the free ones taken for the ask)."""
        while True:
            if self._stopping:
                raise asyncio.CancelledError
            self._wake.clear()  # a ready message during the sweep wakes the next one at once
            for band in self._order.order():
                generation = self._order.generation[band]
                extra = await self._take_free_slots(MAX_PULL - 1)
                msgs = await self._take(band, 1 + extra)
                for _ in range(1 + extra - max(len(msgs), 1)):
                    self._slots.release()  # asked for more than the band had
                if msgs:
                    for _ in msgs:
                        self._order.served(band)
                    return msgs, band
                self._order.empty(band, generation)
                self._metrics.queue_depth.labels(str(max(band, 0))).set(0)
            try:
                await asyncio.wait_for(self._wake.wait(), self._settings.idle_recheck_s)
            except TimeoutError:
                self._order.all_ready()

    async def _take_free_slots(self, most: int) -> int:
        taken = 0
        while taken < most and not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            taken += 1
        return taken

    async def _take(self, band: int, batch: int) -> list[Msg]:
        # Pulled messages arrive under their own subject, not the reply inbox, so they cannot
        # go through the request multiplexer: each band has its own inbox subscription, and
        # asks are sequential (a late answer to an ask that timed out is a real delivery, or an
        # empty-band status, and is read by the next ask).
        inbox = self._inboxes.get(band)
        if inbox is None:
            inbox = self._inboxes[band] = await self._nc.subscribe(self._nc.new_inbox())
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{subjects.RUNS_STREAM}.{_consumer(band)}"
        request = json.dumps({"batch": batch, "no_wait": True}).encode()
        msgs: list[Msg] = []
        try:
            await self._nc.publish(subject, request, reply=inbox.subject)
            # Up to `batch` commands; fewer are followed by a status (404: no more).
            while len(msgs) < batch:
                msg = await inbox.next_msg(timeout=self._settings.request_timeout_s)
                if msg.headers and msg.headers.get("Status"):
                    break  # 404 no messages, 408 request expired, 409 consumer busy or gone
                msgs.append(msg)
        except Exception as exc:  # the server is away: the idle check asks again
            log.debug("band %d: %s", band, exc)
        return msgs

    async def _dispatch(self, msg: Msg, band: int) -> None:
        slot = RunSlot(self._slots)
        try:
            try:
                command = RunCommand.model_validate_json(msg.data)
            except ValidationError:
                log.error("dropping a malformed run command on %s", msg.subject)
                with contextlib.suppress(Exception):
                    await msg.term()
                return
            label = str(max(band, 0))
            self._metrics.queue_wait_seconds.labels(label).observe(
                max(0.0, time.time() - command.created_at)
            )
            with contextlib.suppress(Exception):
                self._metrics.queue_depth.labels(label).set(msg.metadata.num_pending)
            await self._handle(command, msg, slot)
        finally:
            slot.give_back()
