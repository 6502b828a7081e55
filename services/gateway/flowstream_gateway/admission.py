"""Rate limits and quotas, checked before a run is queued or a stream opens (ADR 0036).

- Rate limits (per user, per app key, per workflow: N runs per period) count fixed windows in KV
  `flowstream_rates`, one key per scope and window, changed with compare-and-set: every gateway
  replica counts the same requests. Over the limit: 429 with `Retry-After` = the window's end.
- The concurrent-run quota (per user, per app key: running + pending) is a slot set per caller in
  the same bucket: the gateway adds a run when it queues it, the engine that ends it removes it;
  each entry expires at the run's deadline, so a lost removal cannot hold a slot for ever.
  Unlike a concurrency limit (the run waits in the queue), a full quota refuses the submission.
- Open streams (SSE, attach, WebSocket) are counted per gateway replica: a stream costs the
  replica that serves it, and a client can only be refused where it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flowstream_shared.kv_sets import Contended, change_slots, read_slots
from flowstream_shared.slots import SlotSet, key_token
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from flowstream_gateway.errors import ApiError
from flowstream_gateway.settings import GatewaySettings

_CAS_ATTEMPTS = 30


def too_many(message: str, retry_after_s: float) -> ApiError:
    return ApiError(
        429,
        "too_many_requests",
        message,
        {"Retry-After": str(max(1, math.ceil(retry_after_s)))},
    )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a quota counts: the user and, with an app key, that key's id."""

    user_id: str
    app_key: str | None = None


@dataclass(frozen=True, slots=True)
class Rate:
    key: str
    limit: int
    period_s: float
    name: str


class RateLimiter:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def hit(self, rate: Rate, now: float | None = None) -> None:
        """Count one request in the current window, or raise 429 when it is full."""
        now = time.time() if now is None else now
        window = int(now // rate.period_s)
        key = f"rate.{rate.key}.{window}"
        retry_after = (window + 1) * rate.period_s - now
        for _ in range(_CAS_ATTEMPTS):
            try:
                entry = await self._kv.get(key)
                count, revision = int(entry.value or b"0"), entry.revision
            except (KeyNotFoundError, KeyDeletedError):
                count, revision = 0, None
            if count >= rate.limit:
                raise too_many(
                    f"rate limit exceeded: {rate.name} allows {rate.limit} runs per "
                    f"{rate.period_s:g} s",
                    retry_after,
                )
            try:
                if revision is None:
                    await self._kv.create(key, b"1")
                else:
                    await self._kv.update(key, str(count + 1).encode(), last=revision)
                return
            except KeyWrongLastSequenceError:
                continue
            except Exception as exc:  # a concurrent `create` won the window's first request
                if "wrong last sequence" in str(exc).lower():
                    continue
                raise
        raise too_many(f"rate limit busy: {rate.name}", 1)


# Whether a run has ended, from the event log (RunService.run_has_ended).
EndedCheck = Callable[[str], Awaitable[bool]]
# A full quota looks at most this many of its runs in the event log.
_ENDED_CHECKS = 20


class ActiveRunQuota:
    """Running + pending runs per caller, across every replica.

    The engine that ends a run removes it; a full quota also looks in the event log for runs
    that have ended but are still counted (removed an instant later, or never: their engine
    died in between), so a caller is never refused for a run that is over."""

    def __init__(self, kv: KeyValue, user_limit: int, app_key_limit: int) -> None:
        self._kv = kv
        self._user_limit = user_limit
        self._app_key_limit = app_key_limit
        self.has_ended: EndedCheck | None = None

    def keys(self, caller: Caller) -> list[tuple[str, int, str]]:
        scopes: list[tuple[str, int, str]] = []
        if self._user_limit:
            scopes.append((f"active.user.{key_token(caller.user_id)}", self._user_limit, "user"))
        if caller.app_key and self._app_key_limit:
            scopes.append(
                (f"active.appkey.{key_token(caller.app_key)}", self._app_key_limit, "app key")
            )
        return scopes

    async def enter(self, caller: Caller, run_id: str, until: float) -> list[str]:
        """Count the run against the caller's quotas; raise 429 when one is full. Returns the
        keys the engine removes the run from when it ends."""
        entered: list[str] = []
        for key, limit, name in self.keys(caller):
            refused_until = await self._add(key, limit, run_id, until, set())
            if refused_until is not None:
                ended = await self._ended_runs(key)
                if ended:
                    refused_until = await self._add(key, limit, run_id, until, ended)
            if refused_until is not None:
                await self.leave(run_id, entered)
                raise too_many(
                    f"quota exceeded: the {name} has {limit} runs running or pending "
                    f"(quota of concurrent runs)",
                    min(max(refused_until - time.time(), 1), 60),
                )
            entered.append(key)
        return entered

    async def _add(
        self, key: str, limit: int, run_id: str, until: float, ended: set[str]
    ) -> float | None:
        """None when the run is counted; else when the quota's oldest run expires."""

        def add(slots: SlotSet) -> tuple[SlotSet, float | None]:
            holders = {run: u for run, u in slots.holders.items() if run not in ended}
            if run_id in holders:
                return SlotSet(holders=holders), None
            if len(holders) >= limit:
                return SlotSet(holders=holders), min(holders.values())
            return SlotSet(holders={**holders, run_id: until}), None

        try:
            return await change_slots(self._kv, key, add)
        except Contended:
            return time.time() + 1

    async def _ended_runs(self, key: str) -> set[str]:
        if self.has_ended is None:
            return set()
        _, slots = await read_slots(self._kv, key)
        oldest = sorted(slots.holders, key=slots.holders.__getitem__)[:_ENDED_CHECKS]
        answers = await asyncio.gather(*(self.has_ended(run) for run in oldest))
        return {run for run, ended in zip(oldest, answers, strict=True) if ended}

    async def leave(self, run_id: str, keys: list[str]) -> None:
        def remove(slots: SlotSet) -> tuple[SlotSet, None]:
            return SlotSet(
                holders={r: u for r, u in slots.holders.items() if r != run_id}, waiting={}
            ), None

        for key in keys:
            with contextlib.suppress(Exception):  # expires at the run's deadline anyway
                await change_slots(self._kv, key, remove)


class StreamTicket:
    def __init__(self, quota: StreamQuota, caller: Caller) -> None:
        self._quota = quota
        self._caller = caller
        self._open = True

    def release(self) -> None:
        if self._open:
            self._open = False
            self._quota._release(self._caller)


class StreamQuota:
    """Open streams per caller on this replica."""

    def __init__(self, user_limit: int, app_key_limit: int) -> None:
        self._user_limit = user_limit
        self._app_key_limit = app_key_limit
        self._users: Counter[str] = Counter()
        self._keys: Counter[str] = Counter()

    def open(self, caller: Caller) -> StreamTicket:
        if self._user_limit and self._users[caller.user_id] >= self._user_limit:
            raise too_many(
                f"quota exceeded: the user has {self._user_limit} open streams "
                "(quota of open streams)",
                5,
            )
        if (
            caller.app_key
            and self._app_key_limit
            and self._keys[caller.app_key] >= self._app_key_limit
        ):
            raise too_many(
                f"quota exceeded: the app key has {self._app_key_limit} open streams "
                "(quota of open streams)",
                5,
            )
        self._users[caller.user_id] += 1
        if caller.app_key:
            self._keys[caller.app_key] += 1
        return StreamTicket(self, caller)

    def _release(self, caller: Caller) -> None:
        self._users[caller.user_id] -= 1
        if self._users[caller.user_id] <= 0:
            del self._users[caller.user_id]
        if caller.app_key:
            self._keys[caller.app_key] -= 1
            if self._keys[caller.app_key] <= 0:
                del self._keys[caller.app_key]


class Admission:
    """Everything a submission passes before its command is queued."""

    def __init__(self, kv: KeyValue, settings: GatewaySettings) -> None:
        self._settings = settings
        self.rates = RateLimiter(kv)
        self.active = ActiveRunQuota(
            kv, settings.user_max_active_runs, settings.app_key_max_active_runs
        )
        self.streams = StreamQuota(settings.user_max_streams, settings.app_key_max_streams)

    def rate_scopes(
        self, caller: Caller, workflow_id: str, workflow_rate: tuple[int, float] | None
    ) -> list[Rate]:
        settings = self._settings
        rates: list[Rate] = []
        if caller.app_key and settings.app_key_rate_limit:
            rates.append(
                Rate(
                    f"appkey.{key_token(caller.app_key)}",
                    settings.app_key_rate_limit,
                    settings.app_key_rate_period_s,
                    "the app key",
                )
            )
        if settings.user_rate_limit:
            rates.append(
                Rate(
                    f"user.{key_token(caller.user_id)}",
                    settings.user_rate_limit,
                    settings.user_rate_period_s,
                    "the user",
                )
            )
        if workflow_rate is not None:
            limit, period = workflow_rate
            rates.append(
                Rate(
                    f"workflow.{key_token(caller.user_id)}.{workflow_id}",
                    limit,
                    period,
                    f"workflow {workflow_id}",
                )
            )
        return rates

    async def admit(
        self, caller: Caller, workflow_id: str, workflow_rate: tuple[int, float] | None
    ) -> None:
        for rate in self.rate_scopes(caller, workflow_id, workflow_rate):
            await self.rates.hit(rate)
