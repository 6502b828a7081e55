"""Asks the history service over NATS request/reply; its errors become API errors.

A history that is briefly away (restarting: nobody answers its subject) or whose store is briefly
away (it answers `503`) is asked again, with growing pauses, for a few seconds before the caller
gets `503`: a rolling restart or a database fail-over is not an outage for readers. A history
that does not answer in time is not asked again: that time is already spent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.history import HistoryOp, HistoryReply
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from flowstream_gateway.errors import ApiError

# How long a read keeps asking a history that is away, and the longest pause between two asks.
AWAY_FOR_S = 6.0
PAUSE_MAX_S = 1.0


class _Away(Exception):
    """History, or its store, is away for now: asking again may succeed."""


class HistoryClient:
    def __init__(self, nc: Any, timeout_s: float = 5.0, away_for_s: float = AWAY_FOR_S) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._away_for_s = away_for_s

    async def ask(self, op: HistoryOp, query: BaseModel) -> Any:
        return (await self.reply(op, query)).result

    async def reply(self, op: HistoryOp, query: BaseModel) -> HistoryReply:
        """History's successful reply (its `behind` says whether it could confirm having
        recorded what the query named); its errors are raised as API errors."""
        give_up_at = time.monotonic() + self._away_for_s
        pause = 0.1
        while True:
            try:
                return await self._ask(op, query)
            except _Away as exc:
                if time.monotonic() + pause > give_up_at:
                    raise ApiError(503, "service_unavailable", str(exc)) from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, PAUSE_MAX_S)

    async def _ask(self, op: HistoryOp, query: BaseModel) -> HistoryReply:
        try:
            message = await self._nc.request(
                subjects.history_subject(op.value),
                query.model_dump_json().encode(),
                timeout=self._timeout_s,
            )
        except NoRespondersError as exc:
            raise _Away("the history service is not answering") from exc
        except NatsTimeout as exc:
            raise ApiError(
                503, "service_unavailable", "the history service did not answer in time"
            ) from exc
        reply = HistoryReply.model_validate_json(message.data)
        if reply.error is not None:
            if reply.error.status == 503:
                raise _Away(reply.error.message)
            raise ApiError(reply.error.status, reply.error.code, reply.error.message)
        return reply
