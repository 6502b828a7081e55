"""Asks the history service over NATS request/reply; its errors become API errors."""

from __future__ import annotations

from typing import Any

from flowstream_shared import subjects
from flowstream_shared.history import HistoryOp, HistoryReply
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from flowstream_gateway.errors import ApiError


class HistoryClient:
    def __init__(self, nc: Any, timeout_s: float = 5.0) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def ask(self, op: HistoryOp, query: BaseModel) -> Any:
        try:
            message = await self._nc.request(
                subjects.history_subject(op.value),
                query.model_dump_json().encode(),
                timeout=self._timeout_s,
            )
        except (NoRespondersError, NatsTimeout) as exc:
            raise ApiError(
                503, "service_unavailable", "the history service is not answering"
            ) from exc
        reply = HistoryReply.model_validate_json(message.data)
        if reply.error is not None:
            raise ApiError(reply.error.status, reply.error.code, reply.error.message)
        return reply.result
