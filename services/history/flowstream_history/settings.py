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
    # Replies to the gateway are one NATS message each: keep them under its max_payload.
    history_reply_max_bytes: int = Field(default=768 << 10, ge=16 << 10)
    # Inputs and outputs of each run in a list are summarized to this many bytes.
    history_list_value_max_bytes: int = Field(default=4096, ge=256)
