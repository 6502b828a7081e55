"""JetStream publishes whose acknowledgements are futures that always resolve.

nats-py's `publish_async` loses the future of a publish the stream refuses (its reply handler
raises instead of failing the future) and never fails one whose reply is lost in a disconnect.
Here every publish gets a future that resolves to its acknowledgement, fails with the stream's
error, or fails with :class:`AckTimeout` after `timeout` seconds, whichever comes first. One inbox
subscription per process collects every acknowledgement; no task per publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

_NO_RESPONDERS = "503"
# JetStream's error code for a failed `Nats-Expected-Last-Subject-Sequence` check.
WRONG_LAST_SEQUENCE = 10071
# A replicated stream cannot check the expectation yet: another message checked against the
# same subject is still being proposed. Sent again, it is checked against what that one left.
CHECK_IN_PROGRESS = 10164


@dataclass(frozen=True, slots=True)
class PubAck:
    seq: int
    duplicate: bool


class PublishError(Exception):
    """The stream refused the message, or did not answer."""

    @property
    def permanent(self) -> bool:
        """Sending the same message again cannot succeed."""
        return False


class StreamRefused(PublishError):
    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (code {code}, error {err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description

    @property
    def permanent(self) -> bool:
        # A failed expectation, a too-large message or a bad request will fail again as sent;
        # a stream without quorum, a timeout inside the cluster or a check that had to wait
        # for another proposal may not.
        if self.err_code == CHECK_IN_PROGRESS:
            return False
        return self.code == 400 or self.err_code == WRONG_LAST_SEQUENCE

    @property
    def wrong_last_sequence(self) -> int | None:
        """The actual last sequence, when the refusal is a failed sequence expectation."""
        if self.err_code != WRONG_LAST_SEQUENCE:
            return None
        tail = self.description.rsplit(":", 1)[-1].strip()
        return int(tail) if tail.isdigit() else None


class AckTimeout(PublishError):
    """No acknowledgement in time: the message may or may not have been stored."""


class NoStream(PublishError):
    """No stream listens on the subject (yet)."""


class AckedPublisher:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._pending: dict[str, asyncio.Future[PubAck]] = {}
        self._sub: Subscription | None = None
        self._prefix = ""
        self._next = 0

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(PublishError("the publisher stopped"))
        self._pending.clear()

    async def publish(
        self, subject: str, payload: bytes, headers: Mapping[str, str], ack_timeout_s: float
    ) -> asyncio.Future[PubAck]:
        """Send at once; the returned future resolves with the stream's answer."""
        self._next += 1
        token = str(self._next)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PubAck] = loop.create_future()
        self._pending[token] = future
        timer = loop.call_later(ack_timeout_s, self._expire, token, ack_timeout_s)
        future.add_done_callback(lambda _: timer.cancel())
        try:
            await self._nc.publish(
                subject, payload, reply=self._prefix + token, headers=dict(headers)
            )
        except Exception as exc:  # closed or over the reconnect buffer: fail this publish now
            self._pending.pop(token, None)
            if not future.done():
                future.set_exception(PublishError(f"could not send: {exc}"))
        return future

    def _expire(self, token: str, timeout: float) -> None:
        future = self._pending.pop(token, None)
        if future is not None and not future.done():
            future.set_exception(AckTimeout(f"no acknowledgement within {timeout:g}s"))

    async def _on_ack(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if future is None or future.done():
            return  # expired already
        outcome = _parse(msg)
        if isinstance(outcome, PubAck):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)


def _parse(msg: Msg) -> PubAck | PublishError:
    if (msg.headers or {}).get("Status") == _NO_RESPONDERS:
        return NoStream("no stream stores this subject")
    try:
        answer = json.loads(msg.data)
    except ValueError:
        return PublishError(f"unreadable acknowledgement: {msg.data[:100]!r}")
    error = answer.get("error")
    if error is not None:
        return StreamRefused(
            int(error.get("code", 0)), int(error.get("err_code", 0)), str(error.get("description"))
        )
    return PubAck(seq=int(answer.get("seq", 0)), duplicate=bool(answer.get("duplicate", False)))
