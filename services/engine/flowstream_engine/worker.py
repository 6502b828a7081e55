"""Takes one run command from the queue and sees it through to its `workflow_finished`.

Acknowledgement policy, in one place:
- the run ended (whatever its status), or its log already holds its end: ack;
- another attempt holds the run (a duplicate delivery after a server crash, or a resubmitted
  command): wait while its lease stands, then take the run over from its log; if a concurrent
  delivery took it first, neither ack nor nak, so the command stays with that attempt;
- the event log cannot store the run's events: nak, so the run resumes later from its log;
- this engine is shutting down mid-run: nak at once, so another engine resumes it now;
- the last allowed delivery: the run is ended `failed` instead of being tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.commands import RunCommand
from flowstream_shared.event_log import read_messages
from flowstream_shared.events import WorkflowFinishedData, parse_event
from flowstream_shared.subjects import RunAddress
from flowstream_shared.telemetry.logs import log_context
from flowstream_shared.telemetry.tracing import continued_from
from nats.aio.client import Client
from nats.aio.msg import Msg

from flowstream_engine.cached import replay_cached
from flowstream_engine.control import ControlRegistry
from flowstream_engine.emitter import RunEmitter
from flowstream_engine.lease import Leases
from flowstream_engine.metrics import EngineMetrics
from flowstream_engine.plan import plan_for
from flowstream_engine.publisher import AckedPublisher
from flowstream_engine.run import RunExecutor
from flowstream_engine.run_log import (
    Claim,
    Earlier,
    Fenced,
    LogSettings,
    LogUnavailable,
    RunLog,
    RunLogFailed,
    claim_run,
)
from flowstream_engine.state import RunState

log = logging.getLogger(__name__)


@dataclass
class _Attempt:
    run_id: str
    delivered: int
    holding: bool = False  # claimed: the lease is this attempt's to renew and release


# Told of a run that succeeds here just before its `workflow_finished` is emitted (a result to
# cache, say); failures are its own business.
SuccessHook = Callable[[RunCommand, WorkflowFinishedData], Awaitable[None]]


@dataclass(frozen=True)
class WorkerSettings:
    ack_wait_s: float
    max_deliver: int
    max_event_bytes: int
    log: LogSettings


class RunWorker:
    def __init__(
        self,
        nc: Client,
        publisher: AckedPublisher,
        leases: Leases,
        control: ControlRegistry,
        metrics: EngineMetrics,
        settings: WorkerSettings,
        before_success: SuccessHook | None = None,
    ) -> None:
        self._before_success = before_success
        self._nc = nc
        self._publisher = publisher
        self._leases = leases
        self._control = control
        self._metrics = metrics
        self._settings = settings

    async def handle(self, command: RunCommand, msg: Msg) -> str:
        """`msg` is the raw nats-py message the command came in. Returns the outcome: `done`
        (the run has ended), `retry` (handed back) or `held elsewhere`."""
        attempt = _Attempt(command.run_id, msg.metadata.num_delivered)
        heartbeat = asyncio.create_task(self._heartbeat(msg, attempt))
        try:
            # The gateway's trace continues here; every line about the run names it.
            with (
                log_context(run_id=command.run_id, workflow_id=command.workflow.workflow_id),
                continued_from(msg.headers),
            ):
                outcome = await self._attempt(command, attempt)
        except asyncio.CancelledError:
            await self._hand_back(msg, attempt, delay=None)  # shutting down: at once
            # Idle engines sleep until a ready message (a nak'd command sends none): wake them,
            # so the run resumes now rather than at their next idle check.
            with contextlib.suppress(Exception):
                await self._nc.publish(subjects.ready_subject(command.priority), b"")
            raise
        finally:
            heartbeat.cancel()
        if outcome == "done":
            await msg.ack()
        elif outcome == "retry":
            await self._hand_back(msg, attempt, delay=self._settings.ack_wait_s)
        # "held elsewhere": the attempt holding the run acknowledges it
        return outcome

    async def _hand_back(self, msg: Msg, attempt: _Attempt, delay: float | None) -> None:
        with contextlib.suppress(Exception):
            await msg.nak(delay=delay)
        if attempt.holding:
            await self._leases.release(attempt.run_id)

    async def _heartbeat(self, msg: Msg, attempt: _Attempt) -> None:
        while True:
            await asyncio.sleep(self._settings.ack_wait_s / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()
            if attempt.holding:
                await self._leases.renew(attempt.run_id)

    async def _claim(self, run: RunAddress, attempt: _Attempt) -> Claim | None:
        settings = self._settings.log
        claim = await claim_run(self._publisher, run, attempt.delivered, settings)
        if isinstance(claim, Earlier):
            # Another attempt claimed the run: take over only once nobody executes it any more.
            await self._leases.wait_until_free(run.run_id)
            claim = await claim_run(self._publisher, run, attempt.delivered, settings, claim)
        assert not isinstance(claim, Earlier)
        return claim

    async def _attempt(self, command: RunCommand, attempt: _Attempt) -> str:
        run = RunAddress.of(command.user_id, command.workflow.workflow_id, command.run_id)
        try:
            claim = await self._claim(run, attempt)
        except LogUnavailable as exc:
            log.warning("run %s: %s; handing it back", command.run_id, exc)
            return "retry"
        if claim is None:
            log.info("run %s is held by another attempt", command.run_id)
            return "held elsewhere"
        attempt.holding = True
        renewing = asyncio.create_task(self._leases.renew(command.run_id))
        state = await self._read_log(run, command) if claim.resumed else RunState()
        del renewing  # runs on its own; a lost lease costs nothing but a needless take-over
        delivered = attempt.delivered
        if state.finished is not None:
            return "done"  # a redelivered command of a run that has ended
        run_log = RunLog(
            self._publisher,
            run,
            claim,
            state.last_seq,
            self._settings.log,
            on_retry=self._metrics.publish_retries.inc,
        )
        try:
            return await self._execute(command, state, run_log, delivered)
        finally:
            await run_log.close()

    async def _execute(
        self, command: RunCommand, state: RunState, run_log: RunLog, delivered: int
    ) -> str:
        emitter = RunEmitter(
            run_log,
            command.run_id,
            command.task_id,
            last_seq=state.last_seq,
            max_event_bytes=self._settings.max_event_bytes,
        )
        if command.cached_from is not None and state.finished is None:
            replayed = await self._replay(command, state, emitter, run_log)
            if replayed is not None:
                return replayed
        executor = RunExecutor(
            command, plan_for(command.workflow), emitter, state, metrics=self._metrics
        )
        if self._before_success is not None and command.cache is not None:
            executor.before_success = functools.partial(self._before_success, command)
        if delivered >= self._settings.max_deliver and state.finished is None:
            log.error("run %s reached its last delivery; ending it", command.run_id)
            executor.fail("the engine could not complete the run after repeated attempts")
        self._control.register(command.run_id, executor)
        self._metrics.runs_started.inc()
        self._metrics.active_runs.inc()
        execution = asyncio.create_task(executor.execute())
        try:
            either: list[asyncio.Future[Any]] = [execution, run_log.failure]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if run_log.failed and not execution.done():
                execution.cancel()  # nothing this attempt does can be stored any more
            try:
                finished = await execution
            except (RunLogFailed, asyncio.CancelledError):
                if not run_log.failed:
                    raise  # cancelled from outside: the engine is stopping
                return self._after_failure(command, run_log.failure.result())
            self._metrics.runs_finished.labels(finished.status.value).inc()
            return "done"
        finally:
            if not execution.done():
                execution.cancel()
                await asyncio.gather(execution, return_exceptions=True)
            self._control.unregister(command.run_id)
            self._metrics.active_runs.dec()

    async def _replay(
        self, command: RunCommand, state: RunState, emitter: RunEmitter, run_log: RunLog
    ) -> str | None:
        """A cache hit: the earlier run's events, copied; None when they are gone (aged out),
        and the run executes after all."""
        try:
            finished = await replay_cached(self._nc, command, emitter, skip=state.last_seq)
        except RunLogFailed:
            return self._after_failure(command, run_log.failure.result())
        if finished is None:
            return None
        self._metrics.cached_runs.inc()
        self._metrics.runs_finished.labels(finished.status.value).inc()
        return "done"

    def _after_failure(self, command: RunCommand, failure: RunLogFailed) -> str:
        if isinstance(failure, Fenced):
            log.warning("run %s: %s; leaving it to that attempt", command.run_id, failure)
            return "held elsewhere"
        log.warning("run %s: %s; handing it back", command.run_id, failure)
        return "retry"

    async def _read_log(self, run: RunAddress, command: RunCommand) -> RunState:
        """Fold what earlier attempts stored. Read after this attempt's claim, the log is final:
        the earlier attempts can add nothing more."""
        events = [
            parse_event(message.data)
            async for message in read_messages(
                self._nc, subjects.EVENTS_STREAM, run.events_filter, since=command.created_at - 1
            )
        ]
        state = RunState.fold(events)  # by seq: a retried publish may be stored out of order
        log.info("run %s resumes after %d stored events", command.run_id, state.last_seq)
        return state
