"""What a node type is to the engine. Built-in types and plugins implement the same protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowstream_shared.workflow import Node


class NodeError(Exception):
    """A node failed; the message is shown to the user as the node's error."""


@dataclass
class NodeContext:
    node: Node
    config: Any
    run_id: str
    variables: Mapping[str, Any]
    emit_text: Callable[[str], Awaitable[None]]


@dataclass
class NodeResult:
    outputs: dict[str, Any]
    inputs: dict[str, Any] | None = None
    # For branching nodes: which outgoing branch is taken (True/False); None takes every edge.
    branch: bool | None = None
    tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


class NodeKind(Protocol):
    """A node type. `interruptible` kinds are cancelled at once when their run stops."""

    @property
    def name(self) -> str: ...

    @property
    def interruptible(self) -> bool: ...

    def parse_config(self, config: Mapping[str, Any]) -> Any: ...

    async def run(self, ctx: NodeContext) -> NodeResult: ...
