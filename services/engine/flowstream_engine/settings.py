from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from flowstream_shared.settings import ENV_PREFIX, ConcurrencySettings, NatsSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from flowstream_engine.egress.policy import parse_rules

# `a, b c` or a JSON list: operators write these lists by hand.
EntryList = Annotated[list[str], NoDecode]


class EngineSettings(NatsSettings, ConcurrencySettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    engine_host: str = "127.0.0.1"
    engine_port: int = 8081
    engine_concurrency: int = Field(default=256, ge=1, le=100_000)
    # A priority band passed over this many pickups in a row while it had waiting runs is
    # served next (ADR 0035).
    engine_starvation_limit: int = Field(default=10, ge=1, le=10_000)
    # An idle engine wakes on the gateway's ready messages; this check finds what arrives
    # without one (a redelivery after a nak's delay).
    engine_idle_recheck_s: float = Field(default=2.0, gt=0, le=60)
    run_timeout: float = Field(default=300.0, gt=0)
    # The run command stays unacknowledged while the run executes; a heartbeat every third of
    # this keeps it, so a killed engine's runs are redelivered this long after its last beat.
    # Shorter means a faster resume after a crash and more heartbeats (one per run per third).
    engine_ack_wait_s: float = Field(default=4.0, gt=1)
    engine_max_deliver: int = Field(default=20, ge=1)
    # An event unacknowledged this long is sent again (stored once: same message id); after
    # `engine_publish_retry_s` of failures the engine hands the run back. Longer than a
    # JetStream leader election, shorter than the event stream's duplicate window.
    engine_publish_ack_timeout_s: float = Field(default=2.0, gt=0)
    engine_publish_retry_s: float = Field(default=60.0, gt=0, le=110)
    # Opens stored credentials (the gateway holds only the public half). `python -m
    # flowstream_engine` refuses to start without it; `make run` generates one.
    credentials_private_key: SecretStr | None = None
    credentials_cache_s: float = Field(default=30.0, ge=0, le=3600)
    # Egress policy of API_CALL and LLM nodes (flowstream_engine.egress.policy).
    egress_allow: EntryList = Field(default_factory=list)
    egress_deny: EntryList = Field(default_factory=list)
    egress_protected: EntryList = Field(default_factory=list)
    egress_default: Literal["public", "deny"] = "public"
    # Sizes and template budgets (docs/configuration.md, "Limits").
    node_output_max_bytes: int = Field(default=256 << 10, ge=1024)
    template_cpu_s: float = Field(default=1.0, gt=0, le=60)
    template_max_steps: int = Field(default=100_000, ge=1)
    template_max_string: int = Field(default=1_000_000, ge=1024)
    template_memory_mb: int = Field(default=512, ge=64)
    template_workers: int = Field(default=2, ge=1, le=64)

    @field_validator("egress_allow", "egress_deny", "egress_protected", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith('["'):
                return json.loads(text)
            return [entry for entry in re.split(r"[,\s]+", text) if entry]
        return value

    @field_validator("egress_allow", "egress_deny", "egress_protected")
    @classmethod
    def _parseable(cls, value: list[str]) -> list[str]:
        parse_rules(value)  # a bad entry stops the engine at start-up, naming the entry
        return value

    # Each call of a `flowstream.hooks` hook is abandoned after this long.
    hook_timeout_s: float = Field(default=5.0, gt=0, le=300)
