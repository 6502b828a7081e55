"""Settings shared by every process. Each service adds its own class with the same prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FLOWSTREAM_"


class NatsSettings(BaseSettings):
    """Where NATS is, who this process is to it, and how long the event log keeps runs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # One URL, or a comma-separated list: a cluster's seed servers.
    nats_url: str | None = None
    nats_port: int = 4222
    # This process's identity: a user and password, a token, an nkey seed or a `.creds` file
    # (one of them), optionally over TLS with a client certificate.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_nkey_seed: SecretStr | None = None
    nats_creds_file: Path | None = None
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    # Replies to this process's requests come here; its identity may read nothing else's.
    nats_inbox_prefix: str | None = None
    events_max_age_s: float = 7 * 24 * 3600
    # -1: no size limit (the age limit still applies).
    events_max_bytes: int = -1
    stream_replicas: int = 1

    @property
    def url(self) -> str:
        return self.servers[0]

    @property
    def servers(self) -> list[str]:
        if not self.nats_url:
            return [f"nats://127.0.0.1:{self.nats_port}"]
        return [server.strip() for server in self.nats_url.split(",") if server.strip()]

    @property
    def inbox_prefix(self) -> str:
        if self.nats_inbox_prefix:
            return self.nats_inbox_prefix
        return f"_INBOX.{self.nats_user}" if self.nats_user else "_INBOX"

    @model_validator(mode="after")
    def _one_identity(self) -> NatsSettings:
        given = [
            name
            for name, value in (
                ("FLOWSTREAM_NATS_PASSWORD", self.nats_password),
                ("FLOWSTREAM_NATS_TOKEN", self.nats_token),
                ("FLOWSTREAM_NATS_NKEY_SEED", self.nats_nkey_seed),
                ("FLOWSTREAM_NATS_CREDS_FILE", self.nats_creds_file),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"set one NATS credential, not {' and '.join(given)}")
        if (self.nats_user is None) != (self.nats_password is None):
            raise ValueError("FLOWSTREAM_NATS_USER and FLOWSTREAM_NATS_PASSWORD go together")
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ValueError("FLOWSTREAM_NATS_TLS_CERT and FLOWSTREAM_NATS_TLS_KEY go together")
        return self


class DataSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Path(".flowstream")


class TelemetrySettings(BaseSettings):
    """How a process reports on itself. Tracing is configured by the standard `OTEL_*`
    variables instead (flowstream_shared.telemetry.tracing)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


class ConcurrencySettings(BaseSettings):
    """Concurrency limits every engine enforces and every gateway reports (0: no limit)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    user_max_concurrent_runs: int = Field(default=0, ge=0)
    app_key_max_concurrent_runs: int = Field(default=0, ge=0)
