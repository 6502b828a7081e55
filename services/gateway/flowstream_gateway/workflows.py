"""Workflow definitions and their versions, persisted in the `flowstream_workflows` KV bucket.

Storage. The latest version of a workflow is the record under key `<id>`, so whatever needs "the
workflow" (running it, issuing a key, listing) reads one key, as before versions existed. When a
write supersedes version N, the outgoing record is first copied to `<id>.v<N>`, never written
again; then the new record replaces `<id>`. So version N lives under `<id>` while it is the latest
and under `<id>.v<N>` once superseded: the latest is never stored twice, and records written before
versions existed need no migration. Listing skips version keys (a key that is not its record's id).
Deleting removes `<id>` first (the workflow is gone at once), then the version keys.

Writes to one workflow through one replica are serialised by a lock of that workflow. The cache
offers no compare-and-set, so two replicas writing the same workflow at the same instant can
still lose one of the two writes.

Limits. A definition is checked against the size and count limits first (`WorkflowLimits`), then
validated, in a worker thread: a large definition takes the loop no time. Only the latest
`max_versions` versions are kept: the write that makes version N removes version
N - `max_versions`, and reading an older version answers 404 saying it was pruned. Only latest
versions are mirrored in memory (`KvCache(mirrored="*")`); older ones are read from KV.

Drafts (`flowstream_gateway.definitions`): a version whose graph is not complete yet is stored
with its `problems`; it is readable but never runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowstream_shared.commands import WorkflowSnapshot
from flowstream_shared.workflow import (
    Connection,
    Node,
    WorkflowDefinition,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.definition_secrets import restore_secrets
from flowstream_gateway.definitions import WorkflowLimits, assess
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.kv_cache import KvCache

# Ids are UUIDs; anything else (a version key, a character KV keys refuse) is no workflow.
_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class WorkflowRecord(BaseModel):
    """One version of a workflow. `updated_at` is when this version was written."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    user_id: str
    version: int
    definition: WorkflowDefinition
    created_at: int
    updated_at: int
    # Why this version cannot run yet (each naming the node); empty for a runnable version.
    problems: list[str] = Field(default_factory=list)

    @property
    def draft(self) -> bool:
        return bool(self.problems)

    def require_runnable(self) -> None:
        """A draft answers a 400 naming what is missing, before anything is queued."""
        if self.problems:
            raise invalid_param(
                f"workflow {self.id} version {self.version} is a draft and cannot run: "
                f"{self.problems[0]}"
            )

    def snapshot(self) -> WorkflowSnapshot:
        self.require_runnable()  # a draft never becomes a run, whichever route asks
        return WorkflowSnapshot(
            workflow_id=self.id, version=self.version, definition=self.definition
        )


def _with(definition: WorkflowDefinition, field: str, item: BaseModel) -> WorkflowDefinition:
    """`definition` with `item` appended to its `nodes` or `connections`."""
    data: dict[str, Any] = definition.model_dump(mode="json", by_alias=True)
    data[field].append(item.model_dump(mode="json", by_alias=True))
    try:
        return WorkflowDefinition.model_validate(data)
    except ValidationError as exc:  # e.g. past the node limit
        first = exc.errors()[0]
        raise invalid_param(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def _version_key(workflow_id: str, version: int) -> str:
    return f"{workflow_id}.v{version}"


class WorkflowStore:
    def __init__(
        self,
        cache: KvCache[WorkflowRecord],
        credentials: CredentialStore,
        limits: WorkflowLimits | None = None,
    ) -> None:
        self._cache = cache
        self._credentials = credentials
        self.limits = limits or WorkflowLimits()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Validation is CPU work: at most two definitions at once, never on the event loop.
        self._validation = ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate")

    async def _assess(self, definition: WorkflowDefinition, allow_draft: bool) -> list[str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._validation, assess, definition, allow_draft, self.limits
        )

    @contextlib.asynccontextmanager
    async def _writing(self, workflow_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(workflow_id, (asyncio.Lock(), 0))
        self._locks[workflow_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[workflow_id]
            if users == 1:
                del self._locks[workflow_id]
            else:
                self._locks[workflow_id] = (lock, users - 1)

    def _oldest_kept(self, latest: WorkflowRecord) -> int:
        return max(1, latest.version - self.limits.max_versions + 1)

    async def _secrets_resolved(
        self, user_id: str, definition: WorkflowDefinition
    ) -> WorkflowDefinition:
        """Masked values put back (see definition_secrets), credentials named by nodes checked."""

        async def load(workflow_id: str, version: int) -> WorkflowDefinition:
            return (await self.get(user_id, workflow_id, version)).definition

        definition = await restore_secrets(definition, load)
        await self._credentials.check_references(user_id, definition)
        return definition

    async def get(
        self, user_id: str, workflow_id: str, version: int | None = None
    ) -> WorkflowRecord:
        """The caller's workflow at `version` (the latest when None); another user's id answers
        exactly like an unknown one. The record may be a draft: see `require_runnable`."""
        record = await self._cache.get(workflow_id) if _WORKFLOW_ID.match(workflow_id) else None
        if record is None or record.user_id != user_id or record.id != workflow_id:
            raise not_found(f"workflow {workflow_id}")
        if version is None or version == record.version:
            return record
        if 1 <= version < self._oldest_kept(record):
            raise ApiError(
                404,
                "not_found",
                f"version {version} of workflow {workflow_id} was pruned: only the latest "
                f"{self.limits.max_versions} versions are kept",
            )
        older = None
        if 1 <= version < record.version:
            older = await self._cache.get(_version_key(workflow_id, version))
        if older is None:
            raise not_found(f"version {version} of workflow {workflow_id}")
        return older

    async def versions(
        self, user_id: str, workflow_id: str, page: int = 1, size: int = 20
    ) -> tuple[list[WorkflowRecord], int]:
        """One page of the kept versions, newest first, and how many are kept: only the page's
        records are read (superseded versions are not held in memory)."""
        latest = await self.get(user_id, workflow_id)
        oldest = self._oldest_kept(latest)
        stored = {
            int(key.rsplit(".v", 1)[1])
            for key in await self._cache.keys_matching(f"{workflow_id}.*")
            if re.fullmatch(rf"{re.escape(workflow_id)}\.v\d+", key)
        }
        numbers = [latest.version, *sorted((n for n in stored if n >= oldest), reverse=True)]
        wanted = numbers[(page - 1) * size : page * size]

        async def read(number: int) -> WorkflowRecord | None:
            if number == latest.version:
                return latest
            return await self._cache.get(_version_key(workflow_id, number))

        records = await asyncio.gather(*(read(n) for n in wanted))
        return [r for r in records if r is not None], len(numbers)

    async def create(
        self, user_id: str, definition: WorkflowDefinition, allow_draft: bool = False
    ) -> WorkflowRecord:
        definition = await self._secrets_resolved(user_id, definition)
        problems = await self._assess(definition, allow_draft)
        now = int(time.time())
        record = WorkflowRecord(
            id=str(uuid.uuid4()),
            user_id=user_id,
            version=1,
            definition=definition,
            created_at=now,
            updated_at=now,
            problems=problems,
        )
        await self._put(record.id, record)
        return record

    async def replace(
        self,
        user_id: str,
        workflow_id: str,
        definition: WorkflowDefinition,
        allow_draft: bool = False,
    ) -> WorkflowRecord:
        """A new version; the same definition again changes nothing (PUT is idempotent)."""
        await self.get(user_id, workflow_id)  # 404 before any work
        definition = await self._secrets_resolved(user_id, definition)
        problems = await self._assess(definition, allow_draft)
        async with self._writing(workflow_id):
            latest = await self.get(user_id, workflow_id)
            if definition == latest.definition:
                return latest
            return await self._supersede(latest, definition, problems)

    async def add_node(self, user_id: str, workflow_id: str, node: Node) -> WorkflowRecord:
        async with self._writing(workflow_id):
            latest = await self.get(user_id, workflow_id)
            definition = _with(latest.definition, "nodes", node)
            definition = await self._secrets_resolved(user_id, definition)
            return await self._supersede(latest, definition, await self._assess(definition, True))

    async def add_connection(
        self, user_id: str, workflow_id: str, connection: Connection
    ) -> WorkflowRecord:
        async with self._writing(workflow_id):
            latest = await self.get(user_id, workflow_id)
            definition = _with(latest.definition, "connections", connection)
            return await self._supersede(latest, definition, await self._assess(definition, True))

    async def delete(self, user_id: str, workflow_id: str) -> None:
        async with self._writing(workflow_id):
            await self.get(user_id, workflow_id)
            await self._cache.delete(workflow_id)
            versions = await self._cache.keys_matching(f"{workflow_id}.*")
            await asyncio.gather(*(self._cache.delete(key) for key in versions))

    def search(self, user_id: str, tag: str | None, query: str | None) -> list[WorkflowRecord]:
        """The caller's workflows (latest versions), newest first."""
        needle = query.lower() if query else None
        found = [
            r
            for key, r in self._cache.items()
            if key == r.id
            and r.user_id == user_id
            and (tag is None or tag in r.definition.tags)
            and (
                needle is None
                or needle in r.definition.name.lower()
                or needle in r.definition.description.lower()
            )
        ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found

    async def _supersede(
        self, latest: WorkflowRecord, definition: WorkflowDefinition, problems: list[str]
    ) -> WorkflowRecord:
        record = latest.model_copy(
            update={
                "version": latest.version + 1,
                "definition": definition,
                "problems": problems,
                "updated_at": int(time.time()),
            }
        )
        await self._put(_version_key(latest.id, latest.version), latest)
        await self._put(latest.id, record)
        pruned = record.version - self.limits.max_versions
        if pruned >= 1:
            await self._cache.delete(_version_key(latest.id, pruned))
        return record

    async def _put(self, key: str, record: WorkflowRecord) -> None:
        await self._cache.put(key, record, record.model_dump_json(by_alias=True).encode())
