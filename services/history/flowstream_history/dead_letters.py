"""Messages history will not record, kept in the dead-letter stream for an operator to look at.

Each is stored under `flowstream.deadletter.history` with its original bytes and headers that say
why and where it came from; its `Nats-Msg-Id` is its original stream sequence, so a message
delivered again before its acknowledgement landed is stored once. Only a stored dead letter is
acknowledged: when the dead-letter stream does not answer, the message comes back later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from flowstream_shared import subjects
from nats.js import JetStreamContext

from flowstream_history.intake import Rejected

log = logging.getLogger(__name__)

SOURCE = "history"
REASON = "Flowstream-Reason"
DETAIL = "Flowstream-Detail"
ORIGINAL_SUBJECT = "Flowstream-Subject"
ORIGINAL_SEQUENCE = "Flowstream-Stream-Sequence"
DELIVERIES = "Flowstream-Deliveries"
TRUNCATED = "Flowstream-Truncated"
# Room left under the server's max payload for the headers.
_HEADROOM = 4096


class DeadLetters:
    def __init__(self, js: JetStreamContext, max_payload: int, timeout_s: float = 5.0) -> None:
        self._js = js
        self._max_bytes = max(1024, max_payload - _HEADROOM)
        self._timeout_s = timeout_s
        self.subject = subjects.dead_letter_subject(SOURCE)

    async def store(self, rejected: Sequence[Rejected]) -> list[tuple[Rejected, bool]]:
        """Store every rejected message at once; return those that are stored, each with
        whether it is new (False: an earlier delivery of it was stored already)."""
        results = await asyncio.gather(*(self._store(r) for r in rejected), return_exceptions=True)
        stored = [
            (r, result)
            for r, result in zip(rejected, results, strict=True)
            if isinstance(result, bool)
        ]
        if len(stored) < len(rejected):
            failure = next(r for r in results if isinstance(r, BaseException))
            log.warning(
                "the dead-letter stream did not store %d message(s) (%s); they come back later",
                len(rejected) - len(stored),
                failure,
            )
        return stored

    async def _store(self, rejected: Rejected) -> bool:
        message = rejected.message
        metadata = message.metadata
        headers = {
            "Nats-Msg-Id": f"{SOURCE}:{metadata.sequence.stream}",
            REASON: rejected.reason.value,
            DETAIL: rejected.detail,
            ORIGINAL_SUBJECT: message.subject,
            ORIGINAL_SEQUENCE: str(metadata.sequence.stream),
            DELIVERIES: str(metadata.num_delivered),
        }
        payload = message.data
        if len(payload) > self._max_bytes:
            payload = payload[: self._max_bytes]
            headers[TRUNCATED] = "true"
        ack = await self._js.publish(
            self.subject,
            payload,
            timeout=self._timeout_s,
            stream=subjects.DEAD_LETTER_STREAM,
            headers=headers,
        )
        return not ack.duplicate
