"""What a node type is to the engine. Built-in types and plugins implement the same protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from flowstream_shared.apis import ApiSnapshot
from flowstream_shared.masking import ValueMasker
from flowstream_shared.workflow import Node

from flowstream_engine.render.renderer import Renderer, shared_renderer

if TYPE_CHECKING:
    from flowstream_engine.credentials import RunCredentials


class NodeError(Exception):
    """A node failed; the message is shown to the user as the node's error."""


@dataclass
class NodeContext:
    """What a node sees. `variables` holds `input`, `execution`, `sys`, every finished node's
    outputs by node id and, inside a LOOP body, `loop`. `http` is the engine's shared client:
    nodes that make HTTP calls use it rather than opening their own connection pools.
    `credentials` resolves the run owner's stored credentials; `secrets` takes every secret value
    a node sends (it is then masked in the run's events and the engine's log). Nodes render
    templates through `templates`, which keeps long renders off the event loop."""

    node: Node
    config: Any
    run_id: str
    variables: Mapping[str, Any]
    emit_text: Callable[[str], Awaitable[None]]
    http: httpx.AsyncClient | None = None
    execution_id: str = ""
    credentials: RunCredentials | None = None
    secrets: ValueMasker = field(default_factory=ValueMasker)
    # The registry APIs of the run's snapshot, by id (API_CALL with `api_id`).
    apis: Mapping[str, ApiSnapshot] = field(default_factory=dict)
    renderer: Renderer | None = None

    @property
    def templates(self) -> Renderer:
        return self.renderer or shared_renderer()


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
