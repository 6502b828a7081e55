"""What the launcher reads from the environment: the same `FLOWSTREAM_` variables as the services.

The launcher passes the ports and the NATS URL on to its children, so one set of variables
configures the whole stack and the launcher probes the ports the services actually listen on.
"""

from __future__ import annotations

from pathlib import Path

from flowstream_shared.settings import ENV_PREFIX, DataSettings, NatsSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class LauncherSettings(NatsSettings, DataSettings):
    # An empty variable means "not set": `FLOWSTREAM_JWT_SECRET=` must not become an empty key.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    gateway_port: int = Field(default=8080, ge=1, le=65535)
    engine_port: int = Field(default=8081, ge=1, le=65535)
    history_port: int = Field(default=8082, ge=1, le=65535)
    jwt_secret: SecretStr | None = None
    # Unset: a key pair is generated into the data dir (see security_env).
    credentials_private_key: SecretStr | None = None
    # Unset: loopback is allowed, for local development; `none`: nothing beyond the default.
    egress_allow: str | None = None
    egress_protected: str | None = None
    examples_dir: Path = Path("examples")
    ready_timeout_s: float = Field(default=60.0, gt=0)
    # With FLOWSTREAM_NATS_URL: the identities that NATS was configured from (as nats-auth.json),
    # so each service connects as itself. Unset: the services use FLOWSTREAM_NATS_USER & co.
    nats_identities_file: Path | None = None

    @property
    def nats_store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def nats_auth_file(self) -> Path:
        """The embedded NATS server's identities and the auth callout's issuer key."""
        return self.data_dir / "nats-auth.json"

    @property
    def jwt_secret_file(self) -> Path:
        return self.data_dir / "jwt-secret"

    @property
    def credentials_key_file(self) -> Path:
        return self.data_dir / "credentials-key"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"
