"""One engine attempt at one run: its claim on the run, and the writer of the run's events.

**Claim.** Before it publishes anything, an attempt stores a marker on `flowstream.claims.<run>`
expecting the marker it saw last (none, for a new run). Every event of the attempt carries
`Nats-Expected-Last-Subject-Sequence` = its marker's sequence on the claims subject, so once a
later attempt has claimed the run the stream refuses the earlier attempt's events: two engines
can never both add to one run's log (ADR 0011). An attempt that finds an earlier marker reads
the run's log after claiming, when nothing more can be added to it, and resumes from there.

**Writing.** Events go out pipelined in windows: a window is sent at once and the next one only
after the whole window is acknowledged, so a run costs a round trip per window rather than per
event, and a failed publish is retried before anything later is sent — a failure cannot leave a
hole followed by later events. A transient failure is retried with the same `Nats-Msg-Id`
(stored once) for up to `retry_budget_s`, longer than a leader election; after that the log is
unavailable and the attempt hands the run back. A refusal that cannot change (a failed claim,
a message the stream will never take) is never retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from flowstream_shared import subjects
from flowstream_shared.subjects import RunAddress
from flowstream_shared.telemetry.tracing import trace_headers

from flowstream_engine.publisher import (
    AckedPublisher,
    PubAck,
    PublishError,
    StreamRefused,
)

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
ENGINE_ID = f"{socket.gethostname()}:{id(object())}"


class RunLogFailed(Exception):
    """This attempt can no longer add to the run's log."""


class Fenced(RunLogFailed):
    """Another attempt has claimed the run: this one must stop without a word."""


class LogUnavailable(RunLogFailed):
    """The event log did not store the events in time: hand the run back."""


@dataclass(frozen=True)
class Claim:
    seq: int  # the stream sequence of this attempt's marker
    resumed: bool  # an earlier attempt had claimed the run: its log must be read


@dataclass(frozen=True)
class LogSettings:
    ack_timeout_s: float = 2.0
    retry_budget_s: float = 60.0
    window: int = 256
    window_bytes: int = 4 << 20


def window_for(replicas: int) -> int:
    """How many of a run's events may be in flight at once.

    A replicated stream checks `Nats-Expected-Last-Subject-Sequence` only while no other message
    checked against the same subject is still being proposed, and refuses the rest (error
    10164): every event of an attempt is checked against its claim marker, so on a replicated
    stream a run's events go one at a time (runs still go side by side).
    """
    return 1 if replicas > 1 else LogSettings.window


@dataclass(frozen=True)
class Earlier:
    """The run has been claimed before, by the attempt whose marker has this sequence."""

    seq: int


async def claim_run(
    publisher: AckedPublisher,
    run: RunAddress,
    delivery: int,
    settings: LogSettings,
    after: Earlier | None = None,
) -> Claim | Earlier | None:
    """Claim the run for this attempt.

    Without `after`, the claim succeeds only for a run nobody has claimed yet, and answers
    :class:`Earlier` otherwise. With it, the claim takes the run over from that earlier attempt;
    None means a third marker appeared meanwhile: a concurrent delivery of the same command won,
    and taking the run from it would only make two engines fight over it.
    """
    body = json.dumps({"engine": ENGINE_ID, "delivery": delivery, "at": time.time()}).encode()
    headers = {EXPECTED_SEQ: str(after.seq if after else 0)}
    deadline = time.monotonic() + settings.retry_budget_s
    delay = 0.05
    while True:
        try:
            ack = await (
                await publisher.publish(run.claim_subject, body, headers, settings.ack_timeout_s)
            )
            return Claim(ack.seq, resumed=after is not None)
        except StreamRefused as exc:
            actual = exc.wrong_last_sequence
            if actual is not None:
                return None if after is not None else Earlier(actual)
            if exc.permanent:
                raise LogUnavailable(f"claiming run {run.run_id}: {exc}") from exc
            if time.monotonic() > deadline:
                raise LogUnavailable(f"claiming run {run.run_id}: {exc}") from exc
            await asyncio.sleep(delay)  # another claim on the run is being proposed
            delay = min(delay * 2, 2.0)
        except PublishError as exc:
            if time.monotonic() > deadline:
                raise LogUnavailable(f"claiming run {run.run_id}: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


@dataclass(slots=True)
class _Event:
    seq: int
    subject: str
    payload: bytes
    trace: dict[str, str]  # the span that emitted it (`traceparent`); empty while tracing is off


@dataclass
class _Waiter:
    seq: int
    future: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class RunLog:
    """The writer of one attempt's events; `append` never blocks, `stored` waits for storage."""

    def __init__(
        self,
        publisher: AckedPublisher,
        run: RunAddress,
        claim: Claim,
        last_seq: int,
        settings: LogSettings | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self._publisher = publisher
        self._on_retry = on_retry
        self._run = run
        self._settings = settings or LogSettings()
        self._fence = {EXPECTED_SEQ: str(claim.seq), EXPECTED_SUBJECT: run.claim_subject}
        self._queue: deque[_Event] = deque()
        self._stored_through = last_seq
        self._waiters: list[_Waiter] = []
        self._pump: asyncio.Task[None] | None = None
        self.failure: asyncio.Future[RunLogFailed] = asyncio.get_running_loop().create_future()

    @property
    def failed(self) -> bool:
        return self.failure.done()

    def append(self, event: str, payload: bytes, seq: int) -> None:
        if self.failed:
            return  # this attempt is over; the run's next attempt numbers from the stored log
        self._queue.append(_Event(seq, self._run.ingest_subject(event), payload, trace_headers()))
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._drain())

    async def stored(self, through: int) -> None:
        """Wait until every event up to `through` is stored; raise if the log failed."""
        if self.failed:
            raise self.failure.result()
        if self._stored_through >= through:
            return
        waiter = _Waiter(through)
        self._waiters.append(waiter)
        await waiter.future

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._queue and not self.failed:
                await self._send(self._take_window())
        except RunLogFailed as exc:
            self._fail(exc)
        except Exception as exc:  # a writer that dies silently would leave the run stuck
            log.exception("writing the events of run %s failed", self._run.run_id)
            self._fail(LogUnavailable(str(exc)))
        finally:
            self._pump = None
            if self._queue and not self.failed:  # appended while the last window was finishing
                self._pump = asyncio.get_running_loop().create_task(self._drain())

    def _take_window(self) -> list[_Event]:
        window: list[_Event] = []
        size = 0
        while self._queue and len(window) < self._settings.window:
            if window and size + len(self._queue[0].payload) > self._settings.window_bytes:
                break
            event = self._queue.popleft()
            size += len(event.payload)
            window.append(event)
        return window

    async def _send(self, window: list[_Event]) -> None:
        pending = window
        deadline = time.monotonic() + self._settings.retry_budget_s
        delay = 0.05
        while pending:
            acks = [
                await self._publisher.publish(
                    event.subject,
                    event.payload,
                    {
                        **event.trace,
                        **self._fence,
                        MSG_ID: subjects.event_msg_id(self._run.run_id, event.seq),
                    },
                    self._settings.ack_timeout_s,
                )
                for event in pending
            ]
            outcomes = await asyncio.gather(*acks, return_exceptions=True)
            retry: list[_Event] = []
            for event, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, PubAck):
                    continue
                if isinstance(outcome, StreamRefused) and outcome.wrong_last_sequence:
                    raise Fenced(f"run {self._run.run_id} was claimed by another attempt")
                if isinstance(outcome, PublishError) and outcome.permanent:
                    raise LogUnavailable(f"event {event.seq} was refused: {outcome}")
                if not isinstance(outcome, PublishError):
                    raise outcome if isinstance(outcome, BaseException) else RuntimeError(outcome)
                retry.append(event)
            # Everything before the first failure is stored (later ones may be too: sent
            # again, they are recognised by their message id).
            self._advance(retry[0].seq - 1 if retry else pending[-1].seq)
            if retry:
                if time.monotonic() > deadline:
                    raise LogUnavailable(
                        f"the event log did not store run {self._run.run_id}'s events within "
                        f"{self._settings.retry_budget_s:g}s"
                    )
                if self._on_retry is not None:
                    self._on_retry()
                log.warning(
                    "run %s: %d of %d events not stored yet; retrying",
                    self._run.run_id,
                    len(retry),
                    len(pending),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            pending = retry

    def _advance(self, through: int) -> None:
        if through <= self._stored_through:
            return
        self._stored_through = through
        still: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.seq <= through:
                if not waiter.future.done():
                    waiter.future.set_result(None)
            else:
                still.append(waiter)
        self._waiters = still

    def _fail(self, failure: RunLogFailed) -> None:
        if self.failed:
            return
        self.failure.set_result(failure)
        self._queue.clear()
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(failure)
        self._waiters = []
