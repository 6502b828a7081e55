"""Reading stored messages with JetStream's direct get: no consumer to create or delete.

A run's events are read in pages by one request each (`batch` + `next_by_subj`): the server
streams the matching messages to an inbox and ends the page with an end-of-batch status. The last
message on a subject filter is one request too. Direct get is served by any replica of the
stream, so readers never load the stream leader; the stream needs `allow_direct`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.client import Client
from nats.aio.msg import Msg

_NOT_FOUND = "404"
_END_OF_BATCH = "204"
_PAGE = 256


class EventLogError(Exception):
    """The event log answered something other than messages (it is unavailable, say)."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int  # the stream sequence
    subject: str
    data: bytes
    msg_id: str | None = None


def _direct_get_subject(stream: str) -> str:
    return f"$JS.API.DIRECT.GET.{stream}"


def _stored(msg: Msg) -> StoredMessage:
    headers = msg.headers or {}
    return StoredMessage(
        seq=int(headers["Nats-Sequence"]),
        subject=headers["Nats-Subject"],
        data=msg.data,
        msg_id=headers.get("Nats-Msg-Id"),
    )


def _status(msg: Msg) -> str | None:
    return (msg.headers or {}).get("Status")


async def last_message(
    nc: Client, stream: str, subject_filter: str, request_timeout_s: float = 5.0
) -> StoredMessage | None:
    """The newest stored message matching the filter (wildcards allowed), or None."""
    request = json.dumps({"last_by_subj": subject_filter}).encode()
    reply = await nc.request(_direct_get_subject(stream), request, timeout=request_timeout_s)
    status = _status(reply)
    if status == _NOT_FOUND:
        return None
    if status is not None:
        raise EventLogError(f"direct get on {stream} answered status {status}")
    return _stored(reply)


async def read_messages(
    nc: Client,
    stream: str,
    subject_filter: str,
    *,
    after_seq: int = 0,
    since: float | None = None,
    request_timeout_s: float = 5.0,
) -> AsyncIterator[StoredMessage]:
    """Every stored message matching the filter, oldest first.

    Starts after stream sequence `after_seq`, or at Unix time `since` (the server skips older
    messages by time index instead of scanning them), and ends with what is stored now.
    """
    next_seq = after_seq + 1
    start_time = since
    while True:
        request: dict[str, object] = {"next_by_subj": subject_filter, "batch": _PAGE}
        if start_time is not None:
            request["start_time"] = datetime.fromtimestamp(start_time, UTC).isoformat()
            start_time = None
        else:
            request["seq"] = next_seq
        page = await _page(nc, stream, request, request_timeout_s)
        for message in page.messages:
            yield message
            next_seq = message.seq + 1
        if page.pending == 0 or not page.messages:
            return


@dataclass
class _Page:
    messages: list[StoredMessage]
    pending: int


async def _page(
    nc: Client, stream: str, request: dict[str, object], request_timeout_s: float
) -> _Page:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(_direct_get_subject(stream), json.dumps(request).encode(), reply=inbox)
        messages: list[StoredMessage] = []
        while True:
            msg = await sub.next_msg(timeout=request_timeout_s)
            status = _status(msg)
            if status == _NOT_FOUND:
                return _Page(messages, 0)
            if status == _END_OF_BATCH:
                return _Page(messages, int((msg.headers or {}).get("Nats-Num-Pending", "0")))
            if status is not None:
                raise EventLogError(f"direct get on {stream} answered status {status}")
            messages.append(_stored(msg))
    finally:
        await sub.unsubscribe()
