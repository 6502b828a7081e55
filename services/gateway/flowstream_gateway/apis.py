"""The API registry (`/api/apis`): named HTTP APIs per owner, in the KV bucket `flowstream_apis`.

The gateway alone reads and writes the bucket; every replica mirrors it through one watcher
(`KvCache`), so resolving a workflow's APIs when a run is submitted costs no round trip. A run
carries snapshots of the APIs it uses (`WorkflowSnapshot.apis`), never a reference to this store.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from flowstream_shared.apis import ApiDefinition, ApiSnapshot
from pydantic import ConfigDict

from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.kv_cache import KvCache

_API_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class ApiRecord(ApiDefinition):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    user_id: str
    created_at: int
    updated_at: int

    def snapshot(self) -> ApiSnapshot:
        return ApiSnapshot.model_validate(
            self.model_dump(exclude={"user_id", "created_at", "updated_at"})
        )


class ApiStore:
    def __init__(self, cache: KvCache[ApiRecord], credentials: CredentialStore) -> None:
        self._cache = cache
        self._credentials = credentials
        self._writing = asyncio.Lock()

    async def _check_credential(self, user_id: str, definition: ApiDefinition) -> None:
        """The credential an API names is one of the owner's (its value never comes here)."""
        if definition.credential is None:
            return
        try:
            await self._credentials.get(user_id, definition.credential)
        except ApiError as exc:
            raise invalid_param(
                f"credential: unknown credential {definition.credential!r} "
                "(create it with POST /api/credentials)"
            ) from exc

    async def find(self, user_id: str, api_id: str) -> ApiRecord | None:
        """The caller's API, or None (another user's id is no API at all)."""
        record = await self._cache.get(api_id) if _API_ID.match(api_id) else None
        if record is None or record.user_id != user_id or record.id != api_id:
            return None
        return record

    async def get(self, user_id: str, api_id: str) -> ApiRecord:
        record = await self.find(user_id, api_id)
        if record is None:
            raise not_found(f"API {api_id}")
        return record

    def list(self, user_id: str) -> list[ApiRecord]:
        found = [r for key, r in self._cache.items() if key == r.id and r.user_id == user_id]
        return sorted(found, key=lambda r: (r.created_at, r.id), reverse=True)

    async def create(self, user_id: str, definition: ApiDefinition) -> ApiRecord:
        await self._check_credential(user_id, definition)
        now = int(time.time())
        record = ApiRecord(
            **definition.model_dump(),
            id=str(uuid.uuid4()),
            user_id=user_id,
            created_at=now,
            updated_at=now,
        )
        await self._put(record)
        return record

    async def replace(self, user_id: str, api_id: str, definition: ApiDefinition) -> ApiRecord:
        """Runs already submitted keep the settings they were submitted with."""
        await self._check_credential(user_id, definition)
        async with self._writing:
            current = await self.get(user_id, api_id)
            record = ApiRecord(
                **definition.model_dump(),
                id=current.id,
                user_id=user_id,
                created_at=current.created_at,
                updated_at=int(time.time()),
            )
            await self._put(record)
            return record

    async def delete(self, user_id: str, api_id: str) -> None:
        async with self._writing:
            await self.get(user_id, api_id)
            await self._cache.delete(api_id)

    async def _put(self, record: ApiRecord) -> None:
        await self._cache.put(record.id, record, record.model_dump_json().encode())
