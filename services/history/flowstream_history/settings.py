from __future__ import annotations

from flowstream_shared.settings import ENV_PREFIX, DataSettings, NatsSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class HistorySettings(NatsSettings, DataSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    history_host: str = "127.0.0.1"
    history_port: int = 8082
    # SecretStr: the URI usually carries the database password.
    mongodb_uri: SecretStr | None = None
    history_batch_size: int = Field(default=512, ge=1, le=10_000)
    history_max_in_flight: int = Field(default=20_000, ge=1)
    # Unacknowledged events come back after this long (a history process that died mid-batch).
    history_ack_wait_s: float = Field(default=30.0, gt=1)
    history_retry_max_s: float = Field(default=5.0, gt=0)
    # Stats read at most this many of a workflow's most recent runs.
    history_stats_window: int = Field(default=10_000, ge=1)
    # Events held this long without a successful write: `/readyz` fails until one succeeds.
    history_stall_s: float = Field(default=30.0, gt=0)
    # An event of a run whose owner is not known yet comes back after this long (doubling on
    # each delivery, at most 30 s), and is dead-lettered at its last delivery.
    history_owner_retry_s: float = Field(default=1.0, gt=0)
    history_owner_max_deliveries: int = Field(default=8, ge=1)
    # At most this many events wait for their owner at once; past it they are dead-lettered at
    # once, so a flood of events for unknown runs cannot fill `max_ack_pending`.
    history_owner_waiting_max: int = Field(default=1_000, ge=0)
    # A read that names what its caller has seen waits at most this long for it to be recorded.
    history_read_wait_s: float = Field(default=2.0, ge=0)
    # SQLite: connections (and threads) serving reads, beside the one that writes.
    history_sqlite_readers: int = Field(default=4, ge=1, le=64)
    # Replies to the gateway are one NATS message each: keep them under its max_payload.
    history_reply_max_bytes: int = Field(default=768 << 10, ge=16 << 10)
    # Inputs and outputs of each run in a list are summarized to this many bytes.
    history_list_value_max_bytes: int = Field(default=4096, ge=256)
