"""Workflow definitions, persisted in the `flowstream_workflows` KV bucket."""

from __future__ import annotations

import time
import uuid
from importlib.metadata import entry_points

from flowstream_shared.commands import WorkflowSnapshot
from flowstream_shared.validation import DefinitionError, validate_definition
from flowstream_shared.workflow import WorkflowDefinition
from pydantic import BaseModel, ConfigDict

from flowstream_gateway.errors import invalid_param, not_found
from flowstream_gateway.kv_cache import KvCache

NODE_PLUGIN_GROUP = "flowstream.nodes"


class WorkflowRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    user_id: str
    version: int
    definition: WorkflowDefinition
    created_at: int
    updated_at: int

    def snapshot(self) -> WorkflowSnapshot:
        return WorkflowSnapshot(
            workflow_id=self.id, version=self.version, definition=self.definition
        )


def _plugin_node_types() -> frozenset[str]:
    # Names only: the gateway validates that a type exists; the engine loads and runs it.
    return frozenset(ep.name for ep in entry_points(group=NODE_PLUGIN_GROUP))


def check_definition(definition: WorkflowDefinition) -> None:
    try:
        validate_definition(definition, _plugin_node_types())
    except DefinitionError as exc:
        raise invalid_param(str(exc)) from exc


class WorkflowStore:
    def __init__(self, cache: KvCache[WorkflowRecord]) -> None:
        self._cache = cache

    async def get(self, user_id: str, workflow_id: str) -> WorkflowRecord:
        """The caller's workflow; another user's id answers exactly like an unknown one."""
        record = await self._cache.get(workflow_id)
        if record is None or record.user_id != user_id:
            raise not_found(f"workflow {workflow_id}")
        return record

    async def create(self, user_id: str, definition: WorkflowDefinition) -> WorkflowRecord:
        check_definition(definition)
        now = int(time.time())
        record = WorkflowRecord(
            id=str(uuid.uuid4()),
            user_id=user_id,
            version=1,
            definition=definition,
            created_at=now,
            updated_at=now,
        )
        await self._cache.put(record.id, record, record.model_dump_json(by_alias=True).encode())
        return record

    async def delete(self, user_id: str, workflow_id: str) -> None:
        await self.get(user_id, workflow_id)
        await self._cache.delete(workflow_id)

    def search(self, user_id: str, tag: str | None, query: str | None) -> list[WorkflowRecord]:
        needle = query.lower() if query else None
        found = [
            r
            for r in self._cache.values()
            if r.user_id == user_id
            and (tag is None or tag in r.definition.tags)
            and (
                needle is None
                or needle in r.definition.name.lower()
                or needle in r.definition.description.lower()
            )
        ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found
