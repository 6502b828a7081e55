"""The other spellings a definition may arrive in, turned into the one canonical form on input.

Clients written against the orchestration documents that preceded flowstream spell nodes
`{name, node_type, config, position_x, position_y, description}` without ids, connections
`{from_node_id, to_node_id, connection_type, condition, config}`, a workflow's version as a label
(`"version": "1.0"`), a CONDITION's branches as `true_path` / `false_path` in its config and an
API_CALL's mapping as `output_mapping` with plain dotted paths. These functions rewrite such
input (plain dicts, before pydantic validates them) so that everything after validation sees
exactly one model. Nothing here changes a definition already in canonical form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Built-in node and connection types, spelled in upper case; the seeds sometimes write lower.
_BUILTIN_NODE_TYPES = frozenset(
    {"START", "END", "TEMPLATE", "API_CALL", "CONDITION", "DELAY", "PARALLEL", "LOOP", "LLM"}
)
_RESERVED = frozenset({"input", "loop", "execution", "sys", "response"})
_SLUG_CHARS = re.compile(r"[^A-Za-z0-9_]+")
_MAX_ID = 64
_PLAIN_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+|\[\d+\])*$")


class AliasError(ValueError):
    """Two spellings of one field that disagree, or a seed form that cannot be read."""


def _rename(data: dict[str, Any], alias: str, canonical: str) -> None:
    if alias not in data:
        return
    value = data.pop(alias)
    if canonical in data and data[canonical] != value:
        raise AliasError(f"`{alias}` and `{canonical}` are the same field and disagree")
    data[canonical] = value


def _upper_builtin(value: Any, known: Iterable[str]) -> Any:
    if isinstance(value, str) and value.upper() in known and value != value.upper():
        return value.upper()
    return value


def output_mapping_to_outputs(mapping: dict[str, Any]) -> dict[str, Any]:
    """`{"user_id": "response.data.id"}` → `{"user_id": "{{response.data.id}}"}`.

    A plain dotted path is read from the response: `data.id` and `response.data.id` are the
    same. A value that already holds a template is kept as it is.
    """
    outputs: dict[str, Any] = {}
    for name, path in mapping.items():
        if isinstance(path, str) and "{{" not in path and _PLAIN_PATH.match(path.strip()):
            path = path.strip()
            if not (path == "response" or path.startswith(("response.", "response["))):
                path = f"response.{path}"
            outputs[name] = "{{" + path + "}}"
        else:
            outputs[name] = path
    return outputs


_NODE_ALIASES = frozenset({"node_type", "node_id"})
_CONNECTION_ALIASES = frozenset(
    {"from_node_id", "to_node_id", "source", "target", "connection_type"}
)


def _canonical_node(raw: dict[str, Any]) -> bool:
    """Nothing to rewrite: the common case, decided without copying anything (definitions with
    thousands of nodes are validated on every run command)."""
    if raw.keys() & _NODE_ALIASES:
        return False
    kind = raw.get("type")
    if kind == "API_CALL":
        config = raw.get("config")
        return isinstance(config, dict) and "output_mapping" not in config
    if kind not in _BUILTIN_NODE_TYPES and isinstance(kind, str) and not kind.isupper():
        return False
    return raw.get("config", True) is not None


def normalise_node(raw: Any) -> Any:
    if not isinstance(raw, dict) or _canonical_node(raw):
        return raw
    data = dict(raw)
    _rename(data, "node_type", "type")
    _rename(data, "node_id", "id")
    if "type" in data:
        data["type"] = _upper_builtin(data["type"], _BUILTIN_NODE_TYPES)
    config = data.get("config")
    if data.get("type") == "API_CALL" and isinstance(config, dict) and "output_mapping" in config:
        config = dict(config)
        mapped = config.pop("output_mapping")
        if not isinstance(mapped, dict):
            raise AliasError("config.output_mapping must be an object of name → path")
        outputs = dict(config.get("outputs") or {})
        for name, template in output_mapping_to_outputs(mapped).items():
            if name in outputs and outputs[name] != template:
                raise AliasError(f"config.output_mapping.{name} is also in config.outputs")
            outputs[name] = template
        config["outputs"] = outputs
        data["config"] = config
    if data.get("config") is None and "config" in data:
        data["config"] = {}
    return data


def normalise_connection(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    kind = raw.get("type")
    if (
        not raw.keys() & _CONNECTION_ALIASES
        and (not isinstance(kind, str) or kind.isupper())
        and raw.get("config", True) is not None
    ):
        return raw  # canonical already: nothing copied
    data = dict(raw)
    _rename(data, "from_node_id", "from")
    _rename(data, "to_node_id", "to")
    _rename(data, "source", "from")
    _rename(data, "target", "to")
    _rename(data, "connection_type", "type")
    if isinstance(data.get("type"), str):
        data["type"] = data["type"].upper()
    if data.get("config") is None and "config" in data:
        data["config"] = {}
    return data


def slug(text: str) -> str:
    """A node id made from a name: `Fetch user` → `fetch_user`."""
    candidate = _SLUG_CHARS.sub("_", text.strip()).strip("_").lower()[:_MAX_ID] or "node"
    if candidate[0].isdigit():
        candidate = f"n_{candidate}"[:_MAX_ID]
    if candidate in _RESERVED:
        candidate = f"{candidate}_node"
    return candidate


def unique_id(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"_{n}"
        candidate = base[: _MAX_ID - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _assign_ids(nodes: list[Any]) -> list[Any]:
    """Nodes without an id get one made from their name (or type), unique in the workflow."""
    if all(not isinstance(n, dict) or n.get("id") is not None for n in nodes):
        return nodes
    taken = {n["id"] for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str)}
    result: list[Any] = []
    for node in nodes:
        if isinstance(node, dict) and node.get("id") is None:
            node = dict(node)
            node.pop("id", None)
            name = node.get("name") or node.get("type") or "node"
            node["id"] = unique_id(slug(str(name)), taken)
            taken.add(node["id"])
        result.append(node)
    return result


def _find(nodes: list[Any], ref: Any) -> str | None:
    """A node named by a branch path: its id, or else a name that only it has."""
    if not isinstance(ref, str):
        return None
    ids = [n["id"] for n in nodes if isinstance(n, dict) and n.get("id") == ref]
    if ids:
        return ref
    named = [n["id"] for n in nodes if isinstance(n, dict) and n.get("name") == ref]
    return named[0] if len(named) == 1 else None


def _branch_paths(nodes: list[Any], connections: list[Any]) -> tuple[list[Any], list[Any]]:
    """A CONDITION's `true_path` / `false_path` become its CONDITIONAL_TRUE/FALSE connections.

    A path naming no node (yet) stays in the config: a graph built step by step may name its
    branch before adding it, and the next write that adds the node connects it.
    """
    if not any(
        isinstance(n, dict)
        and n.get("type") == "CONDITION"
        and isinstance(n.get("config"), dict)
        and ("true_path" in n["config"] or "false_path" in n["config"])
        for n in nodes
    ):
        return nodes, connections
    pairs = {
        (c.get("from"), c.get("to"))
        for c in connections
        if isinstance(c, dict) and "from" in c and "to" in c
    }
    out_nodes: list[Any] = []
    added: list[dict[str, Any]] = []
    for node in nodes:
        config = node.get("config") if isinstance(node, dict) else None
        if (
            not isinstance(node, dict)
            or node.get("type") != "CONDITION"
            or not isinstance(config, dict)
        ):
            out_nodes.append(node)
            continue
        config = dict(config)
        for key, kind in (("true_path", "CONDITIONAL_TRUE"), ("false_path", "CONDITIONAL_FALSE")):
            target = _find(nodes, config.get(key))
            if config.get(key) is None:
                config.pop(key, None)
            elif target is not None:
                config.pop(key)
                if (node["id"], target) not in pairs:
                    pairs.add((node["id"], target))
                    added.append({"from": node["id"], "to": target, "type": kind})
        out_nodes.append({**node, "config": config})
    return out_nodes, [*connections, *added]


def _branch_conditions(nodes: list[Any], connections: list[Any]) -> list[Any]:
    """A `CONDITIONAL` connection out of a CONDITION whose condition is `true` or `false` is
    that branch: CONDITIONAL_TRUE / CONDITIONAL_FALSE."""
    if not any(isinstance(c, dict) and c.get("type") == "CONDITIONAL" for c in connections):
        return connections
    conditions = {
        n.get("id") for n in nodes if isinstance(n, dict) and n.get("type") == "CONDITION"
    }
    result: list[Any] = []
    for conn in connections:
        if (
            isinstance(conn, dict)
            and conn.get("type") == "CONDITIONAL"
            and conn.get("from") in conditions
            and isinstance(conn.get("condition"), str)
            and conn["condition"].strip().lower() in ("true", "false")
        ):
            branch = conn["condition"].strip().upper()
            conn = {**conn, "type": f"CONDITIONAL_{branch}", "condition": None}
        result.append(conn)
    return result


def normalise_definition(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    data = dict(raw)
    if "version" in data:
        version = data.pop("version")
        if version is not None:
            label = str(version)
            if data.get("version_label") not in (None, label):
                raise AliasError("`version` and `version_label` are the same field and disagree")
            data["version_label"] = label
    # No `nodes` is left absent (not `[]`): a PUT without them keeps the graph it had.
    nodes = data.get("nodes", [])
    connections = data.get("connections", [])
    if not isinstance(nodes, list) or not isinstance(connections, list):
        return data  # the model reports the type error
    if "nodes" not in data and "connections" not in data:
        return data
    nodes = _assign_ids([normalise_node(n) for n in nodes])
    connections = [normalise_connection(c) for c in connections]
    nodes, connections = _branch_paths(nodes, connections)
    data["nodes"] = nodes
    data["connections"] = _branch_conditions(nodes, connections)
    return data
