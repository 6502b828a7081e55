"""Takes one run command from the queue and sees it through to its `workflow_finished`.

Acknowledgement policy, in one place:
- the run ended (whatever its status): ack;
- the payload is not a run command: FastStream rejects it before it gets here;
- this engine is shutting down mid-run: nak, so another engine resumes it from the event log;
- the last allowed delivery: the run is ended `failed` instead of being tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.commands import RunCommand
from flowstream_shared.events import RunEventBase, parse_event

from flowstream_engine.control import ControlRegistry
from flowstream_engine.emitter import EventLog, RunEmitter
from flowstream_engine.metrics import EngineMetrics
from flowstream_engine.plan import plan_for
from flowstream_engine.run import RunExecutor
from flowstream_engine.state import RunState

log = logging.getLogger(__name__)


class RunWorker:
    def __init__(
        self,
        js: Any,
        event_log: EventLog,
        control: ControlRegistry,
        metrics: EngineMetrics,
        ack_wait_s: float,
        max_deliver: int,
    ) -> None:
        self._js = js
        self._event_log = event_log
        self._control = control
        self._metrics = metrics
        self._heartbeat_s = ack_wait_s / 3
        self._max_deliver = max_deliver

    async def handle(self, command: RunCommand, msg: Any) -> None:
        """`msg` is the raw nats-py message the command came in."""
        delivered = msg.metadata.num_delivered
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        try:
            await self._execute(
                command, redelivered=delivered > 1, last_try=delivered >= self._max_deliver
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        finally:
            heartbeat.cancel()
        await msg.ack()

    async def _heartbeat(self, msg: Any) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _execute(self, command: RunCommand, redelivered: bool, last_try: bool) -> None:
        state = await self._read_log(command) if redelivered else RunState()
        emitter = RunEmitter(
            self._event_log,
            command.workflow.workflow_id,
            command.run_id,
            command.task_id,
            last_seq=state.last_seq,
        )
        executor = RunExecutor(command, plan_for(command.workflow), emitter, state)
        if last_try and state.finished is None:
            log.error("run %s reached its last delivery; ending it", command.run_id)
            executor.fail("the engine could not complete the run after repeated attempts")
        self._control.register(command.run_id, executor)
        self._metrics.runs_started.inc()
        self._metrics.active_runs.inc()
        try:
            with self._metrics.run_seconds.time():
                finished = await executor.execute()
            self._metrics.runs_finished.labels(finished.status.value).inc()
        finally:
            self._control.unregister(command.run_id)
            self._metrics.active_runs.dec()

    async def _read_log(self, command: RunCommand) -> RunState:
        """Fold what an earlier attempt already published for this run."""
        filter_subject = subjects.run_events_filter(command.workflow.workflow_id, command.run_id)
        events: list[RunEventBase] = []
        sub = await self._js.subscribe(filter_subject, ordered_consumer=True, deliver_policy="all")
        try:
            info = await sub.consumer_info()
            remaining = info.num_pending
            while remaining > 0:
                msg = await sub.next_msg(timeout=5)
                events.append(parse_event(msg.data))
                remaining = msg.metadata.num_pending
        finally:
            await sub.unsubscribe()
        log.info("run %s resumes after %d stored events", command.run_id, len(events))
        return RunState.fold(events)
