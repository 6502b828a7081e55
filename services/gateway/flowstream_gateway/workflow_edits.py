"""One change to a definition: a node or a connection added, changed or removed, or the
workflow's own fields patched. Each returns a new definition, validated as any request body is
(so the seed spellings are normalised again and ids are made for nodes that lack one).
"""

from __future__ import annotations

from typing import Any

from flowstream_shared.workflow import Connection, Node, WorkflowDefinition
from flowstream_shared.workflow_aliases import (
    AliasError,
    normalise_connection,
    normalise_node,
)
from pydantic import BaseModel, ValidationError

from flowstream_gateway.errors import invalid_param, not_found

# What a PUT of the workflow itself may change without touching its graph.
WORKFLOW_FIELDS = frozenset(
    {"name", "description", "tags", "config", "version", "version_label", "is_active"}
)


def parse(model: type[BaseModel], data: Any, where: str = "") -> Any:
    """`model` validated from `data`, or a 400 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in (where, *first["loc"]) if p != "")
        raise invalid_param(f"{loc or 'body'}: {first['msg']}") from exc
    except AliasError as exc:
        raise invalid_param(f"{where or 'body'}: {exc}") from exc


def _dump(definition: WorkflowDefinition) -> dict[str, Any]:
    data: dict[str, Any] = definition.model_dump(mode="json", by_alias=True)
    return data


def _item(item: BaseModel) -> dict[str, Any]:
    data: dict[str, Any] = item.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def with_item(definition: WorkflowDefinition, field: str, item: BaseModel) -> WorkflowDefinition:
    """`definition` with `item` appended to its `nodes` or `connections`."""
    data = _dump(definition)
    data[field].append(_item(item))
    parsed: WorkflowDefinition = parse(WorkflowDefinition, data)
    return parsed


def find_node(definition: WorkflowDefinition, node_id: str) -> Node:
    try:
        return definition.node(node_id)
    except KeyError:
        raise not_found(f"node {node_id}") from None


def find_connection(definition: WorkflowDefinition, key: str) -> Connection:
    for conn in definition.connections:
        if conn.key == key:
            return conn
    raise not_found(f"connection {key}")


def replace_node(
    definition: WorkflowDefinition, node_id: str, changes: dict[str, Any]
) -> WorkflowDefinition:
    """The node with the fields `changes` gives (in any accepted spelling) replaced; its id
    stays, so connections and references to it keep working."""
    find_node(definition, node_id)
    try:
        given = normalise_node(dict(changes))
    except AliasError as exc:
        raise invalid_param(str(exc)) from exc
    if given.get("id") not in (None, node_id):
        raise invalid_param(f"id: a node's id cannot change (it is `{node_id}`)")
    data = _dump(definition)
    for index, node in enumerate(data["nodes"]):
        if node["id"] == node_id:
            data["nodes"][index] = {**node, **given, "id": node_id}
    parsed: WorkflowDefinition = parse(WorkflowDefinition, data)
    return parsed


def without_node(definition: WorkflowDefinition, node_id: str) -> WorkflowDefinition:
    """The node removed, with every connection from or to it."""
    find_node(definition, node_id)
    data = _dump(definition)
    data["nodes"] = [n for n in data["nodes"] if n["id"] != node_id]
    data["connections"] = [c for c in data["connections"] if node_id not in (c["from"], c["to"])]
    parsed: WorkflowDefinition = parse(WorkflowDefinition, data)
    return parsed


def replace_connection(
    definition: WorkflowDefinition, key: str, changes: dict[str, Any]
) -> tuple[WorkflowDefinition, Connection]:
    current = find_connection(definition, key)
    try:
        given = normalise_connection(dict(changes))
    except AliasError as exc:
        raise invalid_param(str(exc)) from exc
    data = _dump(definition)
    merged = {**_item(current), **given}
    if current.id is None and "id" not in given:
        # Its address was `<from>-<to>`: keep it even if an end moves.
        merged["id"] = current.key
    data["connections"] = [
        merged if Connection.model_validate(c).key == key else c for c in data["connections"]
    ]
    parsed: WorkflowDefinition = parse(WorkflowDefinition, data)
    return parsed, find_connection(parsed, merged.get("id", key))


def without_connection(definition: WorkflowDefinition, key: str) -> WorkflowDefinition:
    find_connection(definition, key)
    data = _dump(definition)
    data["connections"] = [
        c for c in data["connections"] if Connection.model_validate(c).key != key
    ]
    parsed: WorkflowDefinition = parse(WorkflowDefinition, data)
    return parsed


def patched(definition: WorkflowDefinition, body: dict[str, Any]) -> WorkflowDefinition:
    """The workflow's own fields from `body` (a PUT without `nodes` or `connections`)."""
    unknown = sorted(set(body) - WORKFLOW_FIELDS)
    if unknown:
        raise invalid_param(f"{unknown[0]}: Extra inputs are not permitted")
    data = _dump(definition)
    data.update(body)
    if "version" in body:
        data.pop("version_label", None)
    parsed: WorkflowDefinition = parse(WorkflowDefinition, data)
    return parsed
