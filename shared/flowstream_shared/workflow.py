"""The workflow definition format of DESIGN §5.

Definitions are request bodies, so unknown keys are rejected: a typo in a node's config is an
error at write time, not a silently ignored setting.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# Names that references already use; a node cannot take them.
RESERVED_NODE_IDS = frozenset({"input", "loop", "execution", "sys"})


class NodeType(StrEnum):
    START = "START"
    END = "END"
    TEMPLATE = "TEMPLATE"
    API_CALL = "API_CALL"
    CONDITION = "CONDITION"
    DELAY = "DELAY"
    PARALLEL = "PARALLEL"
    LOOP = "LOOP"
    LLM = "LLM"


class ConnectionType(StrEnum):
    SEQUENCE = "SEQUENCE"
    CONDITIONAL_TRUE = "CONDITIONAL_TRUE"
    CONDITIONAL_FALSE = "CONDITIONAL_FALSE"
    PARALLEL = "PARALLEL"
    LOOP = "LOOP"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryPolicy(_Strict):
    max_attempts: int = Field(default=1, ge=1, le=20)
    backoff: float = Field(default=1.0, ge=0, le=600, description="First delay in seconds")


class Node(_Strict):
    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0, le=86400)
    on_error: str = Field(default="fail", description="`fail`, `continue` or a node id")

    @property
    def title(self) -> str:
        return self.name or self.id


class Connection(_Strict):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    type: ConnectionType = ConnectionType.SEQUENCE


class WorkflowConfig(_Strict):
    timeout: float | None = Field(default=None, gt=0, le=86400)
    retry_count: int = Field(default=0, ge=0, le=20)


class WorkflowDefinition(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    config: WorkflowConfig = Field(default_factory=WorkflowConfig)
    nodes: list[Node] = Field(min_length=1, max_length=10_000)
    connections: list[Connection] = Field(default_factory=list, max_length=50_000)

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


# Per-type configs of the built-in nodes. Plugins validate their own config.

InputType = Literal[
    "string", "text-input", "paragraph", "select", "number", "integer", "boolean", "object", "array"
]


class InputDeclaration(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: InputType = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    options: list[str] | None = None
    max_length: int | None = Field(default=None, ge=1)


class StartConfig(_Strict):
    inputs: list[InputDeclaration] = Field(default_factory=list)


class EndConfig(_Strict):
    outputs: dict[str, str] = Field(default_factory=dict)


class TemplateConfig(_Strict):
    template: str = Field(max_length=100_000)
    stream: bool = False


class ConditionConfig(_Strict):
    condition: str = Field(min_length=1, max_length=10_000)


class DelayConfig(_Strict):
    seconds: float = Field(ge=0, le=86400)


BUILTIN_CONFIGS: dict[str, type[BaseModel]] = {
    NodeType.START: StartConfig,
    NodeType.END: EndConfig,
    NodeType.TEMPLATE: TemplateConfig,
    NodeType.CONDITION: ConditionConfig,
    NodeType.DELAY: DelayConfig,
}

# The fields each built-in node type outputs, so references can be checked at write time.
BUILTIN_OUTPUTS: dict[str, frozenset[str] | None] = {
    NodeType.START: None,  # the declared inputs
    NodeType.END: None,  # the mapped outputs
    NodeType.TEMPLATE: frozenset({"text"}),
    NodeType.CONDITION: frozenset({"result"}),
    NodeType.DELAY: frozenset({"seconds"}),
}
