"""Dify-style app keys: each key is bound to one workflow. Only a hash of the key is stored."""

from __future__ import annotations

import hashlib
import secrets
import time

from pydantic import BaseModel, ConfigDict

from flowstream_gateway.errors import not_found
from flowstream_gateway.kv_cache import KvCache

KEY_PREFIX = "app-"


class ApiKeyRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    user_id: str
    workflow_id: str
    name: str
    created_at: int


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, cache: KvCache[ApiKeyRecord]) -> None:
        self._cache = cache

    async def lookup(self, key: str) -> ApiKeyRecord | None:
        return await self._cache.get(key_hash(key))

    async def issue(self, user_id: str, workflow_id: str, name: str) -> tuple[ApiKeyRecord, str]:
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        digest = key_hash(key)
        record = ApiKeyRecord(
            id=digest[:16],
            user_id=user_id,
            workflow_id=workflow_id,
            name=name,
            created_at=int(time.time()),
        )
        await self._cache.put(digest, record, record.model_dump_json().encode())
        return record, key

    def list(self, user_id: str) -> list[ApiKeyRecord]:
        return sorted(
            (r for r in self._cache.values() if r.user_id == user_id), key=lambda r: r.created_at
        )

    async def revoke(self, user_id: str, key_id: str) -> None:
        for digest, record in self._cache.items():
            if record.id == key_id and record.user_id == user_id:
                await self._cache.delete(digest)
                return
        raise not_found(f"API key {key_id}")
