from __future__ import annotations

from flowstream_shared.settings import ENV_PREFIX, NatsSettings
from pydantic_settings import SettingsConfigDict


class HistorySettings(NatsSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    history_host: str = "127.0.0.1"
    history_port: int = 8082
