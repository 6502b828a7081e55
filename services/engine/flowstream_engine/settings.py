from __future__ import annotations

from flowstream_shared.settings import ENV_PREFIX, NatsSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class EngineSettings(NatsSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    engine_host: str = "127.0.0.1"
    engine_port: int = 8081
    engine_concurrency: int = Field(default=256, ge=1, le=100_000)
    run_timeout: float = Field(default=300.0, gt=0)
    # The run command stays unacknowledged while the run executes; a heartbeat every third of
    # this keeps it, so a killed engine's runs are redelivered this long after its last beat.
    engine_ack_wait_s: float = Field(default=6.0, gt=1)
    engine_max_deliver: int = Field(default=20, ge=1)
    # An event unacknowledged this long is sent again (stored once: same message id); after
    # `engine_publish_retry_s` of failures the engine hands the run back. Longer than a
    # JetStream leader election, shorter than the event stream's duplicate window.
    engine_publish_ack_timeout_s: float = Field(default=2.0, gt=0)
    engine_publish_retry_s: float = Field(default=60.0, gt=0, le=110)
    # Each call of a `flowstream.hooks` hook is abandoned after this long.
    hook_timeout_s: float = Field(default=5.0, gt=0, le=300)
