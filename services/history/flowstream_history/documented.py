"""What history consumes and publishes outside FastStream, described for its AsyncAPI document.

The event intake runs on nats-py directly (a FastStream handler costs ~140 µs of CPU per message
against ~6 µs; ADR 0015), and dead letters are published with nats-py too. This broker is never
connected: it only carries their descriptions into `docs/asyncapi-history.json`, next to the
query responders of the real broker.
"""

from __future__ import annotations

import warnings

from faststream.nats import JStream, NatsBroker
from flowstream_shared import subjects
from flowstream_shared.events import RunEvent
from flowstream_shared.settings import NatsSettings


def described_broker(settings: NatsSettings) -> NatsBroker:
    broker = NatsBroker(settings.servers)
    with warnings.catch_warnings():
        # FastStream warns about every durable push consumer; this one has a deliver group
        # (`queue`), so history replicas do share it (ADR 10).
        warnings.filterwarnings("ignore", message="The JetStream Push consumer with the `durable`")

        @broker.subscriber(
            subjects.ALL_EVENTS,
            stream=JStream(subjects.EVENTS_STREAM, declare=False),
            durable=subjects.HISTORY_CONSUMER,
            queue=subjects.HISTORY_CONSUMER,
            title="run events",
            description=(
                "Every run event, checked and projected into the execution store in batches. "
                "What cannot be recorded goes to the dead letters."
            ),
        )
        async def run_events(event: RunEvent) -> None:
            """Described only: `recorder.Recorder` takes these messages."""

    broker.publisher(
        subjects.dead_letter_subject("history"),
        stream=JStream(subjects.DEAD_LETTER_STREAM, declare=False),
        title="dead letters",
        description=(
            "A delivered message history will not record, as it was delivered, with headers "
            "`Flowstream-Reason` (`unparseable`, `run_mismatch`, `event_mismatch`, "
            "`owner_mismatch`, `owner_unknown`), `Flowstream-Detail`, `Flowstream-Subject`, "
            "`Flowstream-Stream-Sequence` and `Flowstream-Deliveries`."
        ),
        schema=bytes,
    )
    return broker
