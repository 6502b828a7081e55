"""Workflow definitions and their versions, persisted in the `flowstream_workflows` KV bucket.

Storage. The latest version of a workflow is the record under key `<id>`, so whatever needs "the
workflow" (running it, issuing a key, listing) reads one key, as before versions existed. When a
write supersedes version N, the outgoing record is first copied to `<id>.v<N>`, never written
again; then the new record replaces `<id>`. So version N lives under `<id>` while it is the latest
and under `<id>.v<N>` once superseded: the latest is never stored twice, and records written before
versions existed need no migration. Listing skips version keys (a key that is not its record's id).
Deleting removes `<id>` first (the workflow is gone at once), then the version keys.

Writes through one replica are serialised by a lock. The cache offers no compare-and-set, so two
replicas writing the same workflow at the same instant can still lose one of the two writes.

Drafts. A full definition (create, replace, import) must pass `check_definition` unless the caller
asks for a draft. Building step by step (add a node, add a connection) always may leave a draft:
each step must be sound on its own (`check_draft`), and whatever the whole graph still lacks is
kept as the version's `problems`. A draft is stored and readable but never runs.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from importlib.metadata import entry_points
from typing import Any

from flowstream_shared.commands import WorkflowSnapshot
from flowstream_shared.expressions import ExpressionError, compile_condition, compile_template
from flowstream_shared.validation import (
    DefinitionError,
    connection_problem,
    validate_definition,
)
from flowstream_shared.workflow import (
    BUILTIN_CONFIGS,
    RESERVED_NODE_IDS,
    ConditionConfig,
    Connection,
    EndConfig,
    Node,
    NodeType,
    TemplateConfig,
    WorkflowDefinition,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.definition_secrets import restore_secrets
from flowstream_gateway.errors import invalid_param, not_found
from flowstream_gateway.kv_cache import KvCache

NODE_PLUGIN_GROUP = "flowstream.nodes"
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


def _plugin_node_types() -> frozenset[str]:
    # Names only: the gateway validates that a type exists; the engine loads and runs it.
    return frozenset(ep.name for ep in entry_points(group=NODE_PLUGIN_GROUP))


def _problems(definition: WorkflowDefinition) -> list[str]:
    try:
        validate_definition(definition, _plugin_node_types())
    except DefinitionError as exc:
        return [str(exc)]
    return []


def check_definition(definition: WorkflowDefinition) -> None:
    problems = _problems(definition)
    if problems:
        raise invalid_param(problems[0])


# What even a graph under construction must satisfy ---------------------------------------------


def _check_node(node: Node, known_types: frozenset[str]) -> None:
    if node.id in RESERVED_NODE_IDS:
        raise DefinitionError(f"`{node.id}` is reserved for references", node.id)
    if node.type not in known_types:
        raise DefinitionError(f"unknown node type {node.type!r}", node.id)
    model = BUILTIN_CONFIGS.get(node.type)
    if model is None:
        return  # the full check (or a plugin) judges the rest
    try:
        config = model.model_validate(node.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DefinitionError(f"config.{where}: {first['msg']}", node.id) from exc
    try:
        if isinstance(config, TemplateConfig):
            compile_template(config.template)
        elif isinstance(config, EndConfig):
            for source in config.outputs.values():
                compile_template(source)
        elif isinstance(config, ConditionConfig):
            compile_condition(config.condition)
    except ExpressionError as exc:
        raise DefinitionError(str(exc), node.id) from exc


def _check_connection(connection: Connection, types: dict[str, str]) -> None:
    source, target = connection.source, connection.target
    for end in (source, target):
        if end not in types:
            raise DefinitionError(f"connection {source} → {target} names unknown node `{end}`")
    if types[target] == NodeType.START:
        raise DefinitionError("START cannot have incoming connections", target)
    if types[source] == NodeType.END:
        raise DefinitionError("END cannot have outgoing connections", source)
    # The same rule as the full check (CONDITION branches, PARALLEL branches, LOOP bodies).
    problem = connection_problem(connection.type, types[source])
    if problem:
        raise DefinitionError(problem, source)


def check_draft(definition: WorkflowDefinition) -> None:
    """Each node and connection on its own: unique known nodes with sound configs and expressions,
    connections between existing nodes, one START. Raise a 400 naming the node otherwise.

    What only the whole graph can satisfy (an END, every node reachable, both CONDITION branches,
    references that run before their use) is left to `check_definition`.
    """
    known_types = frozenset({*NodeType, *BUILTIN_CONFIGS, *_plugin_node_types()})
    types: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    try:
        for node in definition.nodes:
            if node.id in types:
                raise DefinitionError("duplicate node id", node.id)
            if node.type == NodeType.START and NodeType.START in types.values():
                raise DefinitionError("a workflow has exactly one START node", node.id)
            _check_node(node, known_types)
            types[node.id] = node.type
        if NodeType.START not in types.values():
            raise DefinitionError("a workflow needs a START node, even as a draft")
        for connection in definition.connections:
            _check_connection(connection, types)
            if (connection.source, connection.target) in edges:
                raise DefinitionError(
                    f"duplicate connection to `{connection.target}`", connection.source
                )
            edges.add((connection.source, connection.target))
    except DefinitionError as exc:
        raise invalid_param(str(exc)) from exc


def assess(definition: WorkflowDefinition, allow_draft: bool) -> list[str]:
    """The problems that keep `definition` from running: none, or (drafts only) what it lacks."""
    problems = _problems(definition)
    if problems and not allow_draft:
        raise invalid_param(problems[0])
    if problems:
        check_draft(definition)
    return problems


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
    def __init__(self, cache: KvCache[WorkflowRecord], credentials: CredentialStore) -> None:
        self._cache = cache
        self._credentials = credentials
        self._writing = asyncio.Lock()

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
        older = None
        if 1 <= version < record.version:
            older = await self._cache.get(_version_key(workflow_id, version))
        if older is None:
            raise not_found(f"version {version} of workflow {workflow_id}")
        return older

    async def versions(self, user_id: str, workflow_id: str) -> list[WorkflowRecord]:
        """Every version, newest first."""
        latest = await self.get(user_id, workflow_id)
        older = [
            await self._cache.get(_version_key(workflow_id, n))
            for n in range(latest.version - 1, 0, -1)
        ]
        return [latest, *(r for r in older if r is not None)]

    async def create(
        self, user_id: str, definition: WorkflowDefinition, allow_draft: bool = False
    ) -> WorkflowRecord:
        definition = await self._secrets_resolved(user_id, definition)
        problems = assess(definition, allow_draft)
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
        definition = await self._secrets_resolved(user_id, definition)
        async with self._writing:
            latest = await self.get(user_id, workflow_id)
            problems = assess(definition, allow_draft)
            if definition == latest.definition:
                return latest
            return await self._supersede(latest, definition, problems)

    async def add_node(self, user_id: str, workflow_id: str, node: Node) -> WorkflowRecord:
        async with self._writing:
            latest = await self.get(user_id, workflow_id)
            definition = _with(latest.definition, "nodes", node)
            definition = await self._secrets_resolved(user_id, definition)
            return await self._supersede(latest, definition, assess(definition, True))

    async def add_connection(
        self, user_id: str, workflow_id: str, connection: Connection
    ) -> WorkflowRecord:
        async with self._writing:
            latest = await self.get(user_id, workflow_id)
            definition = _with(latest.definition, "connections", connection)
            return await self._supersede(latest, definition, assess(definition, True))

    async def delete(self, user_id: str, workflow_id: str) -> None:
        async with self._writing:
            latest = await self.get(user_id, workflow_id)
            await self._cache.delete(workflow_id)
            await asyncio.gather(
                *(
                    self._cache.delete(_version_key(workflow_id, n))
                    for n in range(1, latest.version)
                )
            )

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
        return record

    async def _put(self, key: str, record: WorkflowRecord) -> None:
        await self._cache.put(key, record, record.model_dump_json(by_alias=True).encode())
