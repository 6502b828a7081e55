"""Every publish's future resolves: stored, refused by the stream, or timed out — never lost.

nats-py's `publish_async` leaves the future of a refused publish pending for ever (its reply
handler raises instead of failing the future): a run waiting on it would never end.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from flowstream_engine.publisher import AckedPublisher, AckTimeout, NoStream, StreamRefused
from flowstream_shared import subjects
from nats.aio.client import Client


@pytest.fixture
async def publisher(nc: Client) -> AckedPublisher:
    acked = AckedPublisher(nc)
    await acked.start()
    return acked


async def test_a_stored_event_resolves_with_its_sequence(publisher: AckedPublisher) -> None:
    run = subjects.RunAddress("o", "w", str(uuid.uuid4()))
    ack = await (await publisher.publish(run.ingest_subject("workflow_started"), b"{}", {}, 2.0))
    assert ack.seq > 0 and not ack.duplicate


async def test_a_refused_publish_fails_its_future_at_once(publisher: AckedPublisher) -> None:
    claim = subjects.claim_subject(str(uuid.uuid4()))
    await (await publisher.publish(claim, b"{}", {}, 2.0))
    stale = await publisher.publish(
        claim, b"{}", {"Nats-Expected-Last-Subject-Sequence": "0"}, 30.0
    )
    async with asyncio.timeout(5):  # far below the ack timeout: refused, not timed out
        with pytest.raises(StreamRefused) as refused:
            await stale
    assert refused.value.wrong_last_sequence is not None
    assert refused.value.permanent


async def test_a_subject_no_stream_stores_fails_clearly(publisher: AckedPublisher) -> None:
    with pytest.raises(NoStream):
        await (await publisher.publish(f"nowhere.{uuid.uuid4().hex}", b"{}", {}, 2.0))


async def test_an_acknowledgement_that_never_comes_times_out(
    nc: Client, publisher: AckedPublisher
) -> None:
    silent = f"silent.{uuid.uuid4().hex}"
    await nc.subscribe(silent)  # takes the message, never answers: as a lost reply would
    await nc.flush()
    with pytest.raises(AckTimeout):
        await (await publisher.publish(silent, b"{}", {}, 0.3))
