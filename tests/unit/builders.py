"""Builders for workflow definitions, so each test spells out only the graph it is about."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from flowstream_shared.commands import WorkflowSnapshot
from flowstream_shared.workflow import WorkflowDefinition

from tests import support

Spec = dict[str, Any]

# DESIGN §5, verbatim.
GREET: Spec = support.GREET


def field(name: str, type_: str = "string", **extra: Any) -> Spec:
    """One input declaration of a START node."""
    return {"name": name, "type": type_, **extra}


def node(node_id: str, node_type: str, config: Spec | None = None, **extra: Any) -> Spec:
    return {"id": node_id, "type": node_type, "config": config or {}, **extra}


def start(*inputs: Spec, node_id: str = "start") -> Spec:
    return node(node_id, "START", {"inputs": list(inputs)})


def end(node_id: str = "end", **outputs: str) -> Spec:
    return node(node_id, "END", {"outputs": outputs})


def template(node_id: str, source: str, *, stream: bool = False, **extra: Any) -> Spec:
    return node(node_id, "TEMPLATE", {"template": source, "stream": stream}, **extra)


def condition(node_id: str, expression: str, **extra: Any) -> Spec:
    return node(node_id, "CONDITION", {"condition": expression}, **extra)


def delay(node_id: str, seconds: float, **extra: Any) -> Spec:
    return node(node_id, "DELAY", {"seconds": seconds}, **extra)


def parallel(node_id: str, **config: Any) -> Spec:
    """A PARALLEL node; `config` takes `max_concurrent` and `wait_for_all`."""
    return node(node_id, "PARALLEL", config)


def loop(node_id: str, max_iterations: int | None = 3, **config: Any) -> Spec:
    """A LOOP node; `config` takes `condition` and `break_on_error`."""
    extra = {k: config.pop(k) for k in ("retry", "timeout", "on_error", "name") if k in config}
    if max_iterations is not None:
        config["max_iterations"] = max_iterations
    return node(node_id, "LOOP", config, **extra)


def _node_fields(config: dict[str, Any]) -> Spec:
    """The node-level keys among `config`; `node_timeout` is the node's `timeout` (the request's
    own `timeout` stays in the config)."""
    extra: Spec = {k: config.pop(k) for k in ("retry", "on_error", "name") if k in config}
    if "node_timeout" in config:
        extra["timeout"] = config.pop("node_timeout")
    return extra


def api_call(node_id: str, url: str, **config: Any) -> Spec:
    extra = _node_fields(config)
    return node(node_id, "API_CALL", {"url": url, **config}, **extra)


def llm(node_id: str, base_url: str, **config: Any) -> Spec:
    extra = _node_fields(config)
    return node(node_id, "LLM", {"base_url": base_url, "model": "test-model", **config}, **extra)


def connect(source: str, target: str, kind: str = "SEQUENCE") -> Spec:
    return {"from": source, "to": target, "type": kind}


def chain(*node_ids: str) -> list[Spec]:
    """SEQUENCE connections a → b → c …"""
    return [connect(a, b) for a, b in itertools.pairwise(node_ids)]


def definition(nodes: list[Spec], connections: list[Spec], **extra: Any) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {"name": "test", "nodes": nodes, "connections": connections, **extra}
    )


def snapshot(workflow: WorkflowDefinition) -> WorkflowSnapshot:
    # Plans are cached per (workflow id, version): a fresh id per test keeps tests apart.
    return WorkflowSnapshot(workflow_id=f"wf-{uuid.uuid4().hex}", version=1, definition=workflow)
