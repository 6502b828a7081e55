"""Who may do what on NATS: the permissions of each service identity and of direct subscribers.

NATS is a trust boundary (DESIGN §2, §8). Every connection authenticates; each service has its
own identity with only what it needs, stated here once as data: the embedded server of `make
run`, the tests and the deployment files all grant exactly these. Direct subscribers are users:
they connect with their flowstream token and may only read their own events (auth callout,
answered by the gateway; ADR 0012).

JetStream operations are requests on `$JS.API.…` subjects, so they are granted per stream and
consumer; replies come back on each identity's own inbox prefix (`_INBOX.<identity>.…`), which
no other identity may read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from flowstream_shared import subjects

# The account every flowstream identity and direct subscriber lives in.
ACCOUNT = "FLOWSTREAM"
CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
JS_API = "$JS.API"


class Identity(StrEnum):
    GATEWAY = "gateway"
    ENGINE = "engine"
    HISTORY = "history"
    # Answers the auth callout (a connection of the gateway process of its own).
    AUTH = "auth"
    # Operators and test suites: everything.
    ADMIN = "admin"


def inbox_prefix(identity: str) -> str:
    return f"_INBOX.{identity}"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May answer requests it received (a reply subject is granted for one response).
    allow_responses: bool = False
    deny_publish: tuple[str, ...] = field(default=())


def _kv(bucket: str) -> str:
    return f"KV_{bucket}"


def _stream_info(*streams: str) -> list[str]:
    return [f"{JS_API}.STREAM.INFO.{s}" for s in streams]


def _declare(*streams: str) -> list[str]:
    return [f"{JS_API}.STREAM.{op}.{s}" for s in streams for op in ("CREATE", "UPDATE")]


def _direct_get(*streams: str) -> list[str]:
    return [
        form
        for s in streams
        for form in (
            f"{JS_API}.DIRECT.GET.{s}",
            f"{JS_API}.DIRECT.GET.{s}.>",
            f"{JS_API}.STREAM.MSG.GET.{s}",
        )
    ]


def _kv_read(*buckets: str) -> list[str]:
    return _direct_get(*(_kv(b) for b in buckets))


def _kv_write(*buckets: str) -> list[str]:
    return [f"$KV.{b}.>" for b in buckets]


def _kv_watch(*buckets: str) -> list[str]:
    """An ordered consumer (a watcher) on each bucket, its flow control, its removal."""
    rules: list[str] = []
    for bucket in buckets:
        stream = _kv(bucket)
        rules += [
            f"{JS_API}.CONSUMER.CREATE.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.DELETE.{stream}.>",
            f"{JS_API}.CONSUMER.INFO.{stream}.>",
            f"$JS.FC.{stream}.>",
        ]
    return rules


def _durable(stream: str, consumer: str) -> list[str]:
    """A durable consumer of one's own: create or converge it, read it, take and ack messages."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.DELETE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
        f"$JS.FC.{stream}.>",
    ]


_GATEWAY_BUCKETS = (
    subjects.WORKFLOWS_BUCKET,
    subjects.API_KEYS_BUCKET,
    subjects.RUNS_BUCKET,
    subjects.CONTROL_BUCKET,
    subjects.IDEMPOTENCY_BUCKET,
    subjects.CREDENTIALS_BUCKET,
    subjects.APIS_BUCKET,
    subjects.RATES_BUCKET,
)
# Read by the gateway, written by engines.
_ENGINE_BUCKETS = (subjects.LEASES_BUCKET, subjects.SLOTS_BUCKET, subjects.RESULTS_BUCKET)
_ALL_BUCKETS = (*_GATEWAY_BUCKETS, *_ENGINE_BUCKETS)
_ENGINE_CONSUMERS = (
    subjects.ENGINE_CONSUMER,
    *(subjects.band_consumer(band) for band in range(subjects.PRIORITY_BANDS)),
)
_STREAMS = (subjects.RUNS_STREAM, subjects.EVENTS_STREAM, subjects.DEAD_LETTER_STREAM)
_ALL_STREAMS = (*_STREAMS, *(_kv(b) for b in _ALL_BUCKETS))


def service_permissions(identity: Identity) -> Permissions:
    """The permissions of one service identity. Unknown to it means refused."""
    own_inbox = f"{inbox_prefix(identity.value)}.>"
    common = [f"{JS_API}.INFO", *_stream_info(*_ALL_STREAMS)]
    if identity == Identity.GATEWAY:
        return Permissions(
            publish=(
                *common,
                # The gateway declares the streams and buckets (the others wait for them).
                *_declare(*_ALL_STREAMS),
                f"{subjects.SUBMIT_PREFIX}.>",
                subjects.ALL_READY,
                f"{JS_API}.STREAM.MSG.DELETE.{subjects.RUNS_STREAM}",  # re-queue in a new band
                f"{subjects.CONTROL_PREFIX}.*",
                subjects.ALL_HISTORY,
                *_kv_write(*_GATEWAY_BUCKETS),
                *_kv_read(*_GATEWAY_BUCKETS, subjects.SLOTS_BUCKET, subjects.RESULTS_BUCKET),
                *_kv_watch(subjects.WORKFLOWS_BUCKET, subjects.API_KEYS_BUCKET),
                *_kv_watch(subjects.CREDENTIALS_BUCKET, subjects.APIS_BUCKET),
                *_direct_get(subjects.EVENTS_STREAM, subjects.RUNS_STREAM),
                *(f"{JS_API}.CONSUMER.INFO.{subjects.RUNS_STREAM}.{c}" for c in _ENGINE_CONSUMERS),
                f"{JS_API}.CONSUMER.INFO.{subjects.EVENTS_STREAM}.{subjects.HISTORY_CONSUMER}",
            ),
            subscribe=(own_inbox, subjects.ALL_EVENTS),
        )
    if identity == Identity.ENGINE:
        return Permissions(
            publish=(
                *common,
                subjects.ALL_INGEST,
                subjects.ALL_CLAIMS,
                subjects.ALL_READY,  # wakes idle engines for the runs it hands back
                *(rule for c in _ENGINE_CONSUMERS for rule in _durable(subjects.RUNS_STREAM, c)),
                *_direct_get(subjects.EVENTS_STREAM),
                *_kv_write(*_ENGINE_BUCKETS, subjects.RATES_BUCKET),
                *_kv_read(*_ENGINE_BUCKETS, subjects.RATES_BUCKET, subjects.CREDENTIALS_BUCKET),
                *_kv_watch(subjects.CONTROL_BUCKET, subjects.SLOTS_BUCKET),
            ),
            subscribe=(own_inbox, subjects.ALL_CONTROL, subjects.ALL_READY),
        )
    if identity == Identity.HISTORY:
        return Permissions(
            publish=(
                *common,
                f"{subjects.DEAD_LETTER_PREFIX}.>",
                *_durable(subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER),
                *_direct_get(subjects.EVENTS_STREAM),
                *_kv_read(subjects.RUNS_BUCKET),
                *_kv_watch(subjects.RUNS_BUCKET),
            ),
            subscribe=(own_inbox, subjects.ALL_HISTORY),
            allow_responses=True,  # the answers to history queries
        )
    if identity == Identity.AUTH:
        return Permissions(
            publish=(), subscribe=(CALLOUT_SUBJECT,), allow_responses=True, deny_publish=(">",)
        )
    return Permissions(publish=(">",), subscribe=(">",), allow_responses=True)


def subscriber_permissions(owner: str, workflow_id: str | None = None) -> Permissions:
    """A direct subscriber: its own events only (an app key: its workflow's); no publishing,
    so no KV, no history, no commands, no control."""
    allowed = (
        subjects.workflow_events(owner, workflow_id)
        if workflow_id is not None
        else subjects.owner_events(owner)
    )
    return Permissions(publish=(), subscribe=(allowed,), deny_publish=(">",))


def permissions_table() -> str:
    """The permissions of every identity as a Markdown table (docs/nats.md holds it)."""
    rows = ["| identity | may publish | may subscribe | answers requests |", "|---|---|---|---|"]
    for identity in Identity:
        permissions = service_permissions(identity)
        publish = permissions.publish or tuple(
            f"nothing (denied: {d})" for d in permissions.deny_publish
        )
        rows.append(
            f"| `{identity.value}` | {'<br>'.join(f'`{p}`' for p in publish)} | "
            f"{'<br>'.join(f'`{s}`' for s in permissions.subscribe)} | "
            f"{'yes' if permissions.allow_responses else 'no'} |"
        )
    subscriber = subscriber_permissions("<owner>")
    app = subscriber_permissions("<owner>", "<workflow_id>")
    rows.append(f"| a user token (callout) | nothing | `{subscriber.subscribe[0]}` | no |")
    rows.append(f"| an app key (callout) | nothing | `{app.subscribe[0]}` | no |")
    return "\n".join(rows) + "\n"
