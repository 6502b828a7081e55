from __future__ import annotations

from typing import Annotated, Any

from flowstream_shared.credentials import CredentialKeyError, Sealer
from flowstream_shared.settings import ENV_PREFIX, ConcurrencySettings, NatsSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict


class GatewaySettings(NatsSettings, ConcurrencySettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    gateway_port: int = 8080
    gateway_host: str = "127.0.0.1"
    # Required: the launcher generates one in development; production sets it.
    jwt_secret: SecretStr = Field(min_length=32)
    # The engine's public key: the gateway seals credentials it can never open. Required; the
    # launcher derives it from the key pair it generates in development.
    credentials_public_key: str
    run_timeout: float = Field(default=300.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # Limits of definitions, run inputs and stored versions (docs/configuration.md, "Limits").
    max_definition_bytes: int = Field(default=512 << 10, ge=1024)
    max_nodes: int = Field(default=2_000, ge=2)
    max_connections: int = Field(default=5_000, ge=1)
    max_fan_out: int = Field(default=128, ge=1)
    max_input_bytes: int = Field(default=256 << 10, ge=1024)
    workflow_max_versions: int = Field(default=50, ge=1)
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    # A client that takes no bytes of its SSE or WebSocket stream for this long is dropped (a
    # stalled reader); its run goes on and it resumes from its last event.
    stream_send_timeout_s: float = Field(default=30.0, gt=0)
    dify_ping_s: float = Field(default=10.0, gt=0)
    # How long past a run's deadline the gateway waits for the engine's last event before
    # telling the client the run is lost.
    deadline_grace_s: float = Field(default=10.0, ge=0)
    # The auth callout: the identity answering it and the key its answers are signed with
    # (the account public key of this seed is the server's `auth_callout.issuer`). Unset: no
    # direct subscribers (only service identities can connect to NATS).
    nats_callout_user: str | None = None
    nats_callout_password: SecretStr | None = None
    nats_callout_issuer_seed: SecretStr | None = None
    # Where direct subscribers connect (`GET /api/me`); default: the first NATS server.
    nats_public_url: str | None = None
    # Rate limits and quotas (ADR 0036); 0 turns one off.
    user_rate_limit: int = Field(default=0, ge=0)
    user_rate_period_s: float = Field(default=60.0, ge=1, le=3600)
    app_key_rate_limit: int = Field(default=0, ge=0)
    app_key_rate_period_s: float = Field(default=60.0, ge=1, le=3600)
    user_max_active_runs: int = Field(default=0, ge=0)
    app_key_max_active_runs: int = Field(default=0, ge=0)
    user_max_streams: int = Field(default=256, ge=0)
    app_key_max_streams: int = Field(default=256, ge=0)
    # Users who see every caller's waiting runs in `GET /api/queue` (comma-separated ids).
    queue_admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Origins browser apps may call the API from, comma-separated (`*`: any); none by default.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", "queue_admins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    # WebSocket streams send `{"type": "heartbeat"}` after this long without a message.
    ws_heartbeat_s: float = Field(default=30.0, gt=0)
    # Runs all engines together execute at once, for `/api/monitor/realtime` (engine load):
    # unset means one engine of FLOWSTREAM_ENGINE_CONCURRENCY.
    engine_capacity: int | None = Field(default=None, ge=1)
    engine_concurrency: int = Field(default=256, ge=1)

    @field_validator("jwt_secret")
    @classmethod
    def _not_a_placeholder(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text.lower() in {"changeme" * 4, "secret" * 6} or len(set(text)) < 8:
            raise ValueError("FLOWSTREAM_JWT_SECRET looks like a placeholder; use a random value")
        return value

    @field_validator("credentials_public_key")
    @classmethod
    def _a_public_key(cls, value: str) -> str:
        try:
            Sealer(value)
        except CredentialKeyError as exc:
            raise ValueError(f"FLOWSTREAM_CREDENTIALS_PUBLIC_KEY: {exc}") from exc
        return value
