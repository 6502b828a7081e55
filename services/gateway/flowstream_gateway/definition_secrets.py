"""Literal secrets in definitions: masked in every answer, kept when an edit leaves them masked.

A definition may still carry a secret literally (`"Authorization": "Bearer sk-…"`, an `api_key`,
`?api_key=…` in a URL, `"password": …` in a body). Every answer that shows a definition (GET,
export; user tokens and app keys alike) replaces such a value with a placeholder naming where it
comes from: `__masked-<workflow id>-v<version>__`. Values that are only references
(`Bearer {{input.token}}`) are shown as written.

Round trip. A definition written back (PUT, import, add a node) may keep a placeholder exactly
as it was shown: the stored value is put back from that workflow version, provided the caller
owns it and the node id and field are unchanged. A placeholder that cannot be resolved is a 400
naming the node and field, so a secret is never replaced by the placeholder text by accident.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from flowstream_shared.masking import holds_literal_secret, is_secret_name, mask_url
from flowstream_shared.workflow import WorkflowDefinition

from flowstream_gateway.errors import ApiError, invalid_param

Path = tuple[str | int, ...]
MARKER = "__masked-"
_PLACEHOLDER = re.compile(r"__masked-(?P<workflow>[A-Za-z0-9_-]{1,128}?)-v(?P<version>\d{1,9})__")
# Keys whose values are names chosen by the author (output mappings), never secrets.
_NOT_SECRET_CONTAINERS = frozenset({"outputs"})
_URL_FIELDS = frozenset({"url", "base_url"})
# Where a number can be a secret: a query parameter or a header value.
_NUMERIC_SECRET_CONTAINERS = frozenset({"query", "headers"})

# Loads a version of one of the caller's workflows: (workflow id, version) -> its definition.
VersionLoader = Callable[[str, int], Awaitable[WorkflowDefinition | None]]


def placeholder(workflow_id: str, version: int) -> str:
    return f"__masked-{workflow_id}-v{version}__"


def _mask_leaf(path: Path, value: Any, mask: str) -> Any:
    key = path[-1] if path else None
    parent = path[-2] if len(path) >= 2 else None
    if not isinstance(key, str):
        return value
    if isinstance(value, str) and key in _URL_FIELDS and len(path) == 1:
        return mask_url(value, mask, literal_only=True)
    if not is_secret_name(key) or not holds_literal_secret(value):
        return value
    if isinstance(value, str) or parent in _NUMERIC_SECRET_CONTAINERS:
        return mask
    return value


def _mask_config(data: Any, mask: str, path: Path = ()) -> Any:
    if isinstance(data, dict):
        return {
            k: v if k in _NOT_SECRET_CONTAINERS else _mask_config(v, mask, (*path, k))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_mask_config(item, mask, (*path, i)) for i, item in enumerate(data)]
    return _mask_leaf(path, data, mask)


def mask_definition(
    definition: WorkflowDefinition, workflow_id: str, version: int
) -> WorkflowDefinition:
    """The definition as answers show it: literal secrets replaced by placeholders."""
    mask = placeholder(workflow_id, version)
    data: dict[str, Any] = definition.model_dump(mode="json", by_alias=True)
    for node in data["nodes"]:
        node["config"] = _mask_config(node["config"], mask)
    return WorkflowDefinition.model_validate(data)


def _leaves(data: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _leaves(item, (*path, i))
    else:
        yield path, data


def _at(data: Any, path: Path) -> Any:
    for step in path:
        in_list = isinstance(step, int) and isinstance(data, list) and step < len(data)
        if in_list or (isinstance(step, str) and isinstance(data, dict) and step in data):
            data = data[step]
        else:
            raise KeyError(step)
    return data


def _set(data: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


def _field(path: Path) -> str:
    return "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


async def restore_secrets(
    definition: WorkflowDefinition, load_version: VersionLoader
) -> WorkflowDefinition:
    """`definition` with every unchanged placeholder replaced by the value it stands for."""
    data: dict[str, Any] | None = None
    sources: dict[tuple[str, int], WorkflowDefinition | None] = {}
    for index, node in enumerate(definition.nodes):
        for path, leaf in _leaves(node.config):
            if not isinstance(leaf, str) or MARKER not in leaf:
                continue
            found = _PLACEHOLDER.search(leaf)
            problem: str | None = "the placeholder is malformed"
            if found is not None:
                source_key = (found["workflow"], int(found["version"]))
                if source_key not in sources:
                    sources[source_key] = await _load(load_version, *source_key)
                restored, problem = _restore_leaf(
                    sources[source_key], node.id, path, leaf, found[0]
                )
                if problem is None:
                    data = data or definition.model_dump(mode="json", by_alias=True)
                    _set(data["nodes"][index]["config"], path, restored)
                    continue
            raise invalid_param(
                f"node `{node.id}`: {_field(path)} holds a masked value that cannot be "
                f"restored ({problem}); write the value again, or better, store it with "
                "POST /api/credentials and reference it with `credential`"
            )
    return definition if data is None else WorkflowDefinition.model_validate(data)


async def _load(load_version: VersionLoader, workflow_id: str, version: int) -> Any:
    try:
        return await load_version(workflow_id, version)
    except ApiError:
        return None  # not the caller's, or gone: the same answer


def _restore_leaf(
    source: WorkflowDefinition | None, node_id: str, path: Path, leaf: str, mask: str
) -> tuple[Any, str | None]:
    if source is None:
        return None, "its workflow version does not exist"
    try:
        original = _at(source.node(node_id).config, path)
    except KeyError:
        return None, "its workflow version has no such node and field"
    if _mask_leaf(path, original, mask) != leaf:
        return None, "the value around the placeholder was changed"
    return original, None
