"""Starting, following and stopping runs: everything the gateway asks of the engine, over NATS."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.commands import (
    ControlAction,
    ControlCommand,
    DebugOptions,
    ResponseMode,
    RunCommand,
    RunOwner,
    task_id_for,
)

from flowstream_gateway.errors import ApiError
from flowstream_gateway.hub import EventHub, RunFeed, Signal, StreamedEvent
from flowstream_gateway.settings import GatewaySettings
from flowstream_gateway.workflows import WorkflowRecord


class RunHandle:
    """A submitted run and the feed of its events on this replica."""

    def __init__(self, command: RunCommand, feed: RunFeed, hub: EventHub, grace_s: float) -> None:
        self.command = command
        self.feed = feed
        self._hub = hub
        self._give_up_at = command.deadline + grace_s

    @property
    def run_id(self) -> str:
        return self.command.run_id

    @property
    def task_id(self) -> str:
        return self.command.task_id

    def arm_deadline(self) -> asyncio.TimerHandle:
        """Wake the stream with `Signal.LOST` if the engine never reports the run finished."""
        return asyncio.get_running_loop().call_later(
            max(self._give_up_at - time.time(), 0.0), self.feed.queue.put_nowait, Signal.LOST
        )

    async def wait_finished(self) -> StreamedEvent | None:
        """The `workflow_finished` event, or None when the run is lost."""
        timer = self.arm_deadline()
        try:
            while True:
                item = await self.feed.queue.get()
                if item is Signal.LOST:
                    return None
                if isinstance(item, StreamedEvent) and item.is_final:
                    return item
        finally:
            timer.cancel()

    def close(self) -> None:
        self._hub.unwatch(self.feed)


class RunService:
    def __init__(
        self,
        nc: Any,
        js: Any,
        hub: EventHub,
        runs_kv: Any,
        control_kv: Any,
        settings: GatewaySettings,
    ) -> None:
        self._nc = nc
        self._js = js
        self._hub = hub
        self._runs_kv = runs_kv
        self._control_kv = control_kv
        self._settings = settings

    async def start(
        self,
        user_id: str,
        workflow: WorkflowRecord,
        inputs: dict[str, Any],
        response_mode: ResponseMode,
        end_user: str | None = None,
        follow: bool = True,
        execution_name: str | None = None,
        run_timeout: float | None = None,
        debug: DebugOptions | None = None,
    ) -> RunHandle:
        """Queue a run; with `follow`, this replica streams its events into the handle's feed.
        `run_timeout` replaces the workflow's own; `debug` runs it under a debugger."""
        run_id = str(uuid.uuid4())
        now = time.time()
        timeout = run_timeout or workflow.definition.config.timeout or self._settings.run_timeout
        command = RunCommand(
            run_id=run_id,
            task_id=task_id_for(run_id),
            workflow=workflow.snapshot(),
            inputs=inputs,
            user_id=user_id,
            end_user=end_user,
            response_mode=response_mode,
            created_at=now,
            deadline=now + timeout,
            debug=debug,
        )
        owner = RunOwner(
            run_id=run_id,
            task_id=command.task_id,
            workflow_id=workflow.id,
            user_id=user_id,
            created_at=now,
            deadline=command.deadline,
            execution_name=execution_name,
        )
        feed = self._hub.watch(run_id) if follow else RunFeed(run_id)
        try:
            # Both writes in flight at once: the run index costs no extra latency.
            await asyncio.gather(
                self._js.publish(
                    subjects.SUBMIT_SUBJECT,
                    command.model_dump_json(by_alias=True).encode(),
                    headers={"Nats-Msg-Id": run_id},
                    stream=subjects.RUNS_STREAM,
                ),
                self._runs_kv.put(run_id, owner.model_dump_json().encode()),
            )
        except Exception as exc:
            self._hub.unwatch(feed)
            raise ApiError(503, "service_unavailable", f"could not queue the run: {exc}") from exc
        return RunHandle(command, feed, self._hub, self._settings.deadline_grace_s)

    async def owner(self, run_id: str) -> RunOwner | None:
        try:
            entry = await self._runs_kv.get(run_id)
        except Exception:  # nats-py raises KeyNotFoundError or KeyDeletedError
            return None
        if not entry.value:
            return None
        return RunOwner.model_validate_json(entry.value)

    async def has_finished(self, owner: RunOwner) -> bool:
        """Straight from the event log: no lag behind the history projection."""
        subject = subjects.event_subject(owner.workflow_id, owner.run_id, "workflow_finished")
        try:
            await self._js.get_last_msg(subjects.EVENTS_STREAM, subject)
        except Exception:  # nats-py raises NotFoundError when there is none
            return False
        return True

    async def queue_depth(self) -> int:
        """Runs waiting for an engine."""
        try:
            info = await self._js.consumer_info(subjects.RUNS_STREAM, subjects.ENGINE_CONSUMER)
        except Exception:
            return 0
        return int(info.num_pending)

    async def cancel(self, run_id: str, reason: str) -> None:
        """The KV flag is the truth; the core message reaches a running engine at once."""
        await self._control(
            run_id, run_id, ControlCommand(action=ControlAction.CANCEL, reason=reason)
        )

    async def pause(self, run_id: str) -> None:
        """Stop starting nodes; the flag has its own key so it never overwrites a cancel."""
        await self._control(run_id, pause_key(run_id), ControlCommand(action=ControlAction.PAUSE))

    async def resume(self, run_id: str) -> None:
        await self._control(run_id, pause_key(run_id), ControlCommand(action=ControlAction.RESUME))

    async def step(self, run_id: str, pause_seq: int) -> None:
        """Run the nodes held at the pause announced at `pause_seq`, then pause again."""
        await self._control(
            run_id,
            pause_key(run_id),
            ControlCommand(action=ControlAction.STEP, pause_seq=pause_seq),
        )

    async def _control(self, run_id: str, key: str, command: ControlCommand) -> None:
        payload = command.model_dump_json().encode()
        await asyncio.gather(
            self._control_kv.put(key, payload),
            self._nc.publish(subjects.control_subject(run_id), payload),
        )


def pause_key(run_id: str) -> str:
    """`flowstream_control` keys: `<run_id>` holds a cancel (final), `<run_id>.pause` the latest
    pause or resume, so neither ever overwrites the other."""
    return f"{run_id}.pause"
