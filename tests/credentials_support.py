"""Stored credentials without NATS: records sealed exactly as the gateway seals them, kept in a
dict that answers the one call the engine's resolver makes (the KV `get`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flowstream_engine.credentials import CredentialResolver
from flowstream_shared.credentials import (
    CredentialRecord,
    CredentialSecret,
    CredentialType,
    Opener,
    Sealer,
    credential_key,
    generate_private_key,
    public_key_of,
)
from nats.js.errors import KeyNotFoundError


@dataclass
class _Entry:
    value: bytes


class MemoryCredentials:
    def __init__(self) -> None:
        self.private_key = generate_private_key()
        self.sealer = Sealer(public_key_of(self.private_key))
        self.data: dict[str, bytes] = {}
        self.reads = 0

    def add(
        self,
        user_id: str,
        name: str,
        type: str = "bearer",
        value: str | None = None,
        username: str | None = None,
        password: str | None = None,
        **metadata: Any,
    ) -> CredentialRecord:
        now = int(time.time())
        record = CredentialRecord(
            name=name,
            user_id=user_id,
            type=CredentialType(type),
            created_at=now,
            updated_at=now,
            sealed="",
            **metadata,
        )
        secret = CredentialSecret(value=value, username=username, password=password)
        record = self.sealer.seal(record, secret)
        self.data[credential_key(user_id, name)] = record.model_dump_json().encode()
        return record

    async def get(self, key: str) -> _Entry:
        self.reads += 1
        if key not in self.data:
            raise KeyNotFoundError
        return _Entry(self.data[key])

    def resolver(self, cache_s: float = 30.0) -> CredentialResolver:
        return CredentialResolver(self, Opener(self.private_key), cache_s)
