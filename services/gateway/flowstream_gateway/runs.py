"""Starting, following and stopping runs: everything the gateway asks of the engine, over NATS.

`RunService.start` is the one submission path of every route. It subscribes to the run's events
before it publishes the command (no event can be missed), publishes the command and the run's
entry in the run index (KV `flowstream_runs`) at once, and hands back the run's feed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from flowstream_shared import subjects
from flowstream_shared.commands import (
    CacheEntry,
    CacheEntryKey,
    ControlAction,
    ControlCommand,
    DebugOptions,
    ResponseMode,
    RunCommand,
    RunOwner,
    task_id_for,
)
from flowstream_shared.event_log import StoredMessage, last_message
from flowstream_shared.slots import key_token, render_input_key
from flowstream_shared.subjects import RunAddress
from flowstream_shared.telemetry.tracing import inject
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import Field

from flowstream_gateway.admission import Admission, Caller
from flowstream_gateway.errors import ApiError
from flowstream_gateway.hub import EventHub, RunFeed, Signal, StreamedEvent
from flowstream_gateway.idempotency import IdempotencyKeys, fingerprint
from flowstream_gateway.limits import check_input_size
from flowstream_gateway.queue import queue_bands
from flowstream_gateway.settings import GatewaySettings
from flowstream_gateway.workflows import WorkflowRecord

SUBMIT_TIMEOUT_S = 5.0

# The request fields every run-starting route takes (ADR 0035, 0037).
PRIORITY_FIELD: Any = Field(
    default=None,
    ge=0,
    le=subjects.PRIORITY_BANDS - 1,
    description="0 (lowest) to 9 (highest); default: the workflow's `config.priority`",
)
CACHE_FIELD: Any = Field(
    default=True,
    description="false: never answer from the result cache (`config.cache`)",
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retrying with the same key within 24 h answers the same run, never a "
        "second one (DESIGN §3.5)",
    ),
]


class RunHandle:
    """A submitted run and the feed of its events on this replica."""

    def __init__(self, command: RunCommand, feed: RunFeed | None, hub: EventHub, grace_s: float):
        self.command = command
        self._feed = feed
        self._hub = hub
        self._give_up_at = command.deadline + grace_s

    @property
    def feed(self) -> RunFeed:
        assert self._feed is not None, "a run started without following has no feed"
        return self._feed

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

    async def wait_finished(self) -> StreamedEvent | Signal:
        """The `workflow_finished` event, `Signal.LOST` when the run is lost, or
        `Signal.SHUTDOWN` when this replica stops first."""
        timer = self.arm_deadline()
        try:
            while True:
                item = await self.feed.queue.get()
                if item in (Signal.LOST, Signal.SHUTDOWN):
                    assert isinstance(item, Signal)
                    return item
                if isinstance(item, StreamedEvent) and item.is_final:
                    return item
        finally:
            timer.cancel()

    def close(self) -> None:
        if self._feed is not None:
            self._hub.unwatch(self._feed)


@dataclass(frozen=True)
class Submit:
    """What a route asks `RunService.start` for, beyond the workflow and its inputs."""

    response_mode: ResponseMode
    end_user: str | None = None
    follow: bool = True
    execution_name: str | None = None
    idempotency_key: str | None = None
    # Replaces the workflow's own deadline for this run.
    run_timeout: float | None = None
    debug: DebugOptions | None = None
    # None: the workflow's `config.priority`.
    priority: int | None = None
    # The API key's id, for per-key limits and quotas.
    app_key: str | None = None
    # False: never answer from the result cache (the run executes, and is not cached).
    use_cache: bool = True


class RunService:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        hub: EventHub,
        runs_kv: KeyValue,
        control_kv: KeyValue,
        idempotency: IdempotencyKeys,
        settings: GatewaySettings,
        admission: Admission,
        results_kv: KeyValue,
    ) -> None:
        self._admission = admission
        admission.active.has_ended = self.run_has_ended
        self._results_kv = results_kv
        self._nc = nc
        self._js = js
        self._hub = hub
        self._runs_kv = runs_kv
        self._control_kv = control_kv
        self._idempotency = idempotency
        self._settings = settings

    async def start(
        self, user_id: str, workflow: WorkflowRecord, inputs: dict[str, Any], submit: Submit
    ) -> RunHandle:
        """Queue a run; with `submit.follow`, this replica streams its events into its feed."""
        check_input_size(inputs, self._settings.max_input_bytes)
        snapshot = workflow.snapshot()
        now = time.time()
        run_id, repeated = str(uuid.uuid4()), False
        if submit.idempotency_key is not None:
            request = fingerprint(
                workflow=workflow.id, version=workflow.version, inputs=inputs, user=submit.end_user
            )
            submission = await self._idempotency.submission(
                user_id, submit.idempotency_key, request
            )
            run_id, repeated = submission.run_id, submission.repeated
        earlier = await self.owner(run_id) if repeated else None
        created_at = earlier.created_at if earlier else now
        config = workflow.definition.config
        timeout = submit.run_timeout or config.timeout or self._settings.run_timeout
        deadline = earlier.deadline if earlier and earlier.deadline else now + timeout
        priority = config.priority if submit.priority is None else submit.priority
        caller = Caller(user_id, submit.app_key)
        cache, cached_from = None, None
        if config.cache is not None and submit.use_cache:
            key = cache_key(user_id, workflow, inputs)
            cached_from = await self._cached_run(key, user_id, workflow.id)
            if cached_from is None:
                cache = CacheEntryKey(key=key, ttl_s=config.cache.ttl)
            else:
                priority = subjects.PRIORITY_BANDS - 1  # answered at once: nothing executes
        if repeated:
            quota_keys = [key for key, _, _ in self._admission.active.keys(caller)]
        else:
            rate = config.rate_limit
            await self._admission.admit(
                caller, workflow.id, (rate.limit, rate.period) if rate else None
            )
            quota_keys = await self._admission.active.enter(
                caller, run_id, deadline + self._settings.deadline_grace_s
            )
        command = RunCommand(
            run_id=run_id,
            task_id=task_id_for(run_id),
            workflow=snapshot,
            inputs=inputs,
            user_id=user_id,
            end_user=submit.end_user,
            response_mode=submit.response_mode,
            created_at=created_at,
            deadline=deadline,
            priority=priority,
            app_key=submit.app_key,
            quota_keys=quota_keys,
            cache=cache,
            cached_from=cached_from,
            debug=submit.debug,
        )
        run = RunAddress.of(user_id, workflow.id, run_id)
        feed = await self._hub.watch(run, since=created_at - 1) if submit.follow else None
        try:
            await self._submit(command, earlier, submit.execution_name)
        except ApiError:
            if feed is not None:
                self._hub.unwatch(feed)
            if not repeated:
                await self._admission.active.leave(run_id, quota_keys)
            raise
        if repeated and feed is not None:
            await feed.replay()  # the same run again: from its first event
        return RunHandle(command, feed, self._hub, self._settings.deadline_grace_s)

    async def _submit(
        self, command: RunCommand, earlier: RunOwner | None, execution_name: str | None
    ) -> None:
        # A repeated submission publishes its command again: if the first never reached the
        # queue this one runs, and if it did the engine finds the run already claimed.
        writes: list[Coroutine[Any, Any, object]] = [
            self._js.publish(
                command.subject,
                command.model_dump_json(by_alias=True).encode(),
                timeout=SUBMIT_TIMEOUT_S,
                headers=inject({"Nats-Msg-Id": command.run_id}),  # + the request's trace
                stream=subjects.RUNS_STREAM,
            )
        ]
        if earlier is None:
            owner = RunOwner(
                run_id=command.run_id,
                task_id=command.task_id,
                workflow_id=command.workflow.workflow_id,
                user_id=command.user_id,
                created_at=command.created_at,
                deadline=command.deadline,
                execution_name=execution_name,
                end_user=command.end_user,
                priority=command.priority,
            )
            # Both writes in flight at once: the run index costs no extra latency.
            writes.append(self._runs_kv.put(command.run_id, owner.model_dump_json().encode()))
        try:
            await asyncio.gather(*writes)
        except (NatsTimeout, TimeoutError) as exc:
            raise ApiError(
                503,
                "service_unavailable",
                f"the run queue did not confirm run {command.run_id} in time; it may still "
                "start. Retry with the same Idempotency-Key header to get this run, never a "
                "second one",
                {"Retry-After": "1"},
            ) from exc
        except Exception as exc:
            raise ApiError(
                503,
                "service_unavailable",
                f"could not queue the run: {exc}",
                {"Retry-After": "1"},
            ) from exc
        # Wakes an idle engine (a core message: an engine that misses it finds the command on
        # its next check); no round trip.
        await self._nc.publish(subjects.ready_subject(command.priority), b"")

    async def _cached_run(self, key: str, user_id: str, workflow_id: str) -> str | None:
        """The run whose result answers this one, if a live cache entry exists."""
        try:
            entry = await self._results_kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        except Exception:  # the cache is an optimisation: without it the run executes
            return None
        if not entry.value:
            return None
        cached = CacheEntry.model_validate_json(entry.value)
        if cached.expires_at <= time.time() or cached.user_id != user_id:
            return None
        if cached.workflow_id != workflow_id:
            return None
        return cached.run_id

    async def owner(self, run_id: str) -> RunOwner | None:
        try:
            entry = await self._runs_kv.get(run_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if not entry.value:
            return None
        return RunOwner.model_validate_json(entry.value)

    async def last_event(self, owner: RunOwner) -> StoredMessage | None:
        """The run's newest stored event, straight from the event log."""
        run = RunAddress.of(owner.user_id, owner.workflow_id, owner.run_id)
        return await last_message(self._nc, subjects.EVENTS_STREAM, run.events_filter)

    async def run_has_ended(self, run_id: str) -> bool:
        owner = await self.owner(run_id)
        if owner is None:
            return True  # aged out of the run index: long over
        try:
            return await self.has_finished(owner)
        except Exception:
            return False

    async def has_finished(self, owner: RunOwner) -> bool:
        """Straight from the event log: no lag behind the history projection."""
        last = await self.last_event(owner)
        return last is not None and last.subject.endswith(".workflow_finished")

    async def queue_depth(self) -> int:
        """Runs waiting for an engine, all bands."""
        return sum((await queue_bands(self._js)).pending.values())

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


def cache_key(user_id: str, workflow: WorkflowRecord, inputs: dict[str, Any]) -> str:
    """The KV key of a run's cached result: per owner; by default the workflow version and
    every input, else the workflow and the rendered `config.cache.key` (ADR 0037)."""
    config = workflow.definition.config.cache
    if config is not None and config.key:
        material = json.dumps([workflow.id, render_input_key(config.key, inputs)])
    else:
        material = json.dumps([workflow.id, workflow.version, inputs], sort_keys=True, default=str)
    return f"{subjects.owner_token(user_id)}.{key_token(material)}"
