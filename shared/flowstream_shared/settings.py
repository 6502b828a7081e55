"""Settings shared by every process. Each service adds its own class with the same prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FLOWSTREAM_"


class NatsSettings(BaseSettings):
    """Where NATS is and how long the event log keeps runs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    nats_url: str | None = None
    nats_port: int = 4222
    events_max_age_s: float = 7 * 24 * 3600
    # -1: no size limit (the age limit still applies).
    events_max_bytes: int = -1
    stream_replicas: int = 1

    @property
    def url(self) -> str:
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"


class DataSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Path(".flowstream")


class ConcurrencySettings(BaseSettings):
    """Concurrency limits every engine enforces and every gateway reports (0: no limit)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    user_max_concurrent_runs: int = Field(default=0, ge=0)
    app_key_max_concurrent_runs: int = Field(default=0, ge=0)
