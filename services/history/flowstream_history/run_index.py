"""Runs waiting for an engine: one watcher on the run index (KV `flowstream_runs`).

The gateway writes a run's entry (owner, workflow, acceptance time, execution name) as it queues
the run, before any engine has seen it. Each entry becomes a `pending` record unless the run is
recorded already, so a queued run is visible (and its owner known) before its first event. The
watcher starts after the revision the store's registrations reach, so a restart replays only
what it has not recorded; one watcher per process, never one per run.

The watcher is an ordered consumer: the server does not keep it across its own restart, and
nats-py only notices ~20 s later, from missed heartbeats. After every reconnect it is made
again at once, from the revision
after the last one it delivered (`resume`).
"""

from __future__ import annotations

import logging

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from flowstream_history.recorder import Recorder

log = logging.getLogger(__name__)

_STREAM = f"KV_{subjects.RUNS_BUCKET}"
_SUBJECTS = f"$KV.{subjects.RUNS_BUCKET}.>"
# A deletion or purge (`KV-Operation`), or a server marker (`Nats-Marker-Reason`): no value.
_NOT_A_VALUE = ("KV-Operation", "Nats-Marker-Reason")


class RunIndexWatcher:
    def __init__(self, js: JetStreamContext, recorder: Recorder) -> None:
        self._js = js
        self._recorder = recorder
        self._subscription: JetStreamContext.PushSubscription | None = None
        self._last_revision = 0
        self._stopped = False

    async def start(self, after_revision: int) -> None:
        self._last_revision = after_revision
        config = (
            ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_revision + 1
            )
            if after_revision
            else ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        self._subscription = await self._js.subscribe(
            _SUBJECTS, stream=_STREAM, ordered_consumer=True, cb=self._on_entry, config=config
        )

    async def resume(self) -> None:
        """After a reconnect: the same watcher again, from where it was."""
        if self._stopped:
            return
        await self._unsubscribe()
        await self.start(self._last_revision)

    async def stop(self) -> None:
        self._stopped = True
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # the connection already closing
                log.debug("run index watcher: %s", exc)
            self._subscription = None

    async def _on_entry(self, message: Msg) -> None:
        revision = message.metadata.sequence.stream
        headers = message.headers or {}
        entry: RunOwner | None = None
        if message.data and not any(h in headers for h in _NOT_A_VALUE):
            try:
                entry = RunOwner.model_validate_json(message.data)
            except ValidationError:
                log.warning("run index entry %s is not a run owner; skipped", message.subject)
        await self._recorder.register(entry, revision)
        self._last_revision = max(self._last_revision, revision)
