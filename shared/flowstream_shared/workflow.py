"""The workflow definition format of DESIGN §5.

Definitions are request bodies, so unknown keys are rejected: a typo in a node's config is an
error at write time, not a silently ignored setting.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowstream_shared.workflow_aliases import (
    normalise_connection,
    normalise_definition,
    normalise_node,
)

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# Names that references already use; a node cannot take them.
RESERVED_NODE_IDS = frozenset({"input", "loop", "execution", "sys"})
# `"credential": "<name>"`: a stored credential of the workflow's owner (POST /api/credentials).
CREDENTIAL_REF_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


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
    # Taken when its source succeeded and its own `condition` holds; out of any node but a
    # CONDITION or a PARALLEL (those have their own branch types).
    CONDITIONAL = "CONDITIONAL"


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryPolicy(_Strict):
    max_attempts: int = Field(default=1, ge=1, le=20)
    backoff: float = Field(default=1.0, ge=0, le=600, description="First delay in seconds")


METRIC_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$"


class Node(_Strict):
    """A node. Also accepted: `node_type` for `type`, no `id` (one is made from the name)."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0, le=86400)
    on_error: str = Field(default="fail", description="`fail`, `continue` or a node id")
    # Kept for editors; the engine ignores them.
    description: str = Field(default="", max_length=10_000, exclude_if=_is_empty)
    position_x: float | None = Field(default=None, exclude_if=_is_none)
    position_y: float | None = Field(default=None, exclude_if=_is_none)
    metrics: dict[str, str] = Field(
        default_factory=dict,
        max_length=50,
        exclude_if=_is_empty,
        description="custom metrics: name → template evaluated when the node succeeds "
        "(it may reference the node's own outputs); numbers only",
    )

    @property
    def title(self) -> str:
        return self.name or self.id


class NodeInput(Node):
    """A node as a request body: without an `id`, one is made from its name. (Nodes inside a
    definition are rewritten by the definition's own validator, once for all.)"""

    id: str | None = Field(default=None, pattern=NODE_ID_PATTERN)  # type: ignore[assignment]

    _normalise = model_validator(mode="before")(normalise_node)


class Connection(_Strict):
    """A connection. Also accepted: `from_node_id`/`to_node_id`, `connection_type`."""

    id: str | None = Field(default=None, max_length=200, exclude_if=_is_none)
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    type: ConnectionType = ConnectionType.SEQUENCE
    condition: str | None = Field(
        default=None, min_length=1, max_length=10_000, exclude_if=_is_none
    )
    # Kept for editors (labels, styles); the engine ignores it.
    config: dict[str, Any] = Field(default_factory=dict, exclude_if=_is_empty)

    @property
    def key(self) -> str:
        """How single-connection routes address it: its `id`, else `<from>-<to>` (node ids
        never contain `-`, so the pair is unambiguous)."""
        return self.id or f"{self.source}-{self.target}"


class ConnectionInput(Connection):
    """A connection as a request body, in any accepted spelling."""

    _normalise = model_validator(mode="before")(normalise_connection)


# `{{input.<name>}}` references, and nothing that runs code: a concurrency or cache key is
# rendered for every queued run.
_INPUT_KEY = r"^(?:[^{}]|\{\{\s*input\.[A-Za-z_][A-Za-z0-9_]*\s*\}\})*$"


class RateLimit(_Strict):
    """At most `limit` runs started per `period` seconds (fixed windows)."""

    limit: int = Field(ge=1, le=1_000_000)
    period: float = Field(default=60.0, ge=1, le=3600)


class CacheConfig(_Strict):
    """Reuse a succeeded run's result for the same key within `ttl` seconds."""

    ttl: float = Field(default=300.0, gt=0, le=7 * 24 * 3600)
    key: str | None = Field(
        default=None,
        max_length=500,
        pattern=_INPUT_KEY,
        description="A text with `{{input.<name>}}` references; default: the workflow version "
        "and all inputs",
    )


class WorkflowConfig(_Strict):
    timeout: float | None = Field(default=None, gt=0, le=86400)
    priority: int = Field(
        default=0, ge=0, le=9, description="Default priority of the workflow's runs (0-9)"
    )
    max_concurrent_runs: int | None = Field(
        default=None, ge=1, le=100_000, description="Runs of this workflow executing at once"
    )
    concurrency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        pattern=_INPUT_KEY,
        description="Runs with the same rendered key share `concurrency_limit` slots, e.g. "
        "`{{input.customer_id}}`",
    )
    concurrency_limit: int = Field(default=1, ge=1, le=100_000)
    rate_limit: RateLimit | None = None
    cache: CacheConfig | None = None
    retry_count: int = Field(default=0, ge=0, le=20)
    openai_input: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="The START input that takes the last user message when the workflow is "
        "called as an OpenAI-compatible model (default: `query`, else the only required "
        "string input)",
    )


class WorkflowDefinition(_Strict):
    """A workflow. Also accepted: `version` (a label such as `"1.0"`) for `version_label`, and
    no `nodes` at all (a workflow to build step by step: a draft)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    config: WorkflowConfig = Field(default_factory=WorkflowConfig)
    nodes: list[Node] = Field(default_factory=list, max_length=10_000)
    connections: list[Connection] = Field(default_factory=list, max_length=50_000)
    # A free-form label; flowstream's own versions are the integers every write makes.
    version_label: str | None = Field(default=None, max_length=64, exclude_if=_is_none)
    # An inactive workflow keeps its versions but refuses runs (409).
    is_active: bool = Field(default=True, exclude_if=lambda v: v is True)

    _normalise = model_validator(mode="before")(normalise_definition)

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
    # Branch targets not resolved yet: a path names its node once that node exists, then it
    # becomes a CONDITIONAL_TRUE/FALSE connection (see `workflow_aliases`).
    true_path: str | None = None
    false_path: str | None = None


class DelayConfig(_Strict):
    seconds: float = Field(ge=0, le=86400)


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# The fields an API_CALL always outputs; `outputs` adds mapped fields next to them.
API_RESPONSE_FIELDS = frozenset({"status_code", "headers", "body"})


class ApiCallConfig(_Strict):
    """An HTTP request. `url`, header and query values and every string inside `body` are
    templates; a string that is exactly one reference keeps the value's type (a JSON body can
    be an object). `outputs` maps names to templates over `response` and the run's values.

    Instead of `url`, `api_id` names an API of the registry: its base URL, path template,
    method, headers and credential apply, and `parameters` fill the path template (the others
    go to the query string). Also accepted: `output_mapping` with plain dotted paths."""

    method: HttpMethod = "GET"
    url: str | None = Field(default=None, min_length=1, max_length=10_000)
    api_id: str | None = Field(default=None, min_length=1, max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    body: Any = None
    body_type: Literal["json", "text", "form"] | None = Field(
        default=None, description="Default: JSON unless the rendered body is a string (text)"
    )
    timeout: float = Field(default=30.0, gt=0, le=3600)
    follow_redirects: bool = True
    outputs: dict[str, str] = Field(default_factory=dict)
    credential: str | None = Field(
        default=None,
        pattern=CREDENTIAL_REF_PATTERN,
        description="A stored credential of the owner, added as its header or query parameter",
    )

    @model_validator(mode="after")
    def _url_or_api(self) -> ApiCallConfig:
        if (self.url is None) == (self.api_id is None):
            raise ValueError("an API_CALL needs `url` or `api_id` (exactly one)")
        if self.parameters and self.api_id is None:
            raise ValueError("`parameters` fill an API's path template: set `api_id`")
        return self


class ParallelConfig(_Strict):
    max_concurrent: int | None = Field(default=None, ge=1, le=1000)
    wait_for_all: bool = True


class LoopConfig(_Strict):
    """The body runs, then `condition` decides whether it runs again (`loop.index` is then the
    index the next iteration would have); never more than `max_iterations` times."""

    max_iterations: int = Field(ge=1, le=10_000)
    condition: str | None = Field(default=None, min_length=1, max_length=10_000)
    break_on_error: bool = True


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=200_000)


LlmApi = Literal["chat_completions", "responses", "anthropic_messages"]
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class LlmTool(_Strict):
    """A function the model may call; each protocol gets it in its own request shape."""

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = Field(default="", max_length=10_000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="A JSON Schema for the arguments object",
    )


class NamedToolChoice(_Strict):
    name: str = Field(pattern=TOOL_NAME_PATTERN)


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class LlmConfig(_Strict):
    """A model behind one of three wire protocols (`api`): OpenAI Chat Completions
    (`<base_url>/chat/completions`), OpenAI Responses (`<base_url>/responses`) or Anthropic
    Messages (`<base_url>/messages`)."""

    api: LlmApi = "chat_completions"
    base_url: str = Field(min_length=1, max_length=2_000)
    model: str = Field(min_length=1, max_length=200)
    system: str | None = Field(default=None, max_length=200_000)
    messages: list[ChatMessage] = Field(default_factory=list, max_length=1_000)
    prompt: str | None = Field(default=None, max_length=200_000)
    credential: str | None = Field(
        default=None,
        pattern=CREDENTIAL_REF_PATTERN,
        description="A stored credential of the owner holding the provider's API key",
    )
    api_key: str | None = Field(
        default=None, max_length=1_000, description="Prefer `credential`: a literal key"
    )
    tools: list[LlmTool] = Field(default_factory=list, max_length=128)
    tool_choice: ToolChoice | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    timeout: float = Field(default=120.0, gt=0, le=3600)
    upstream_stream: bool = Field(default=True, description="Ask the provider for a stream")
    stream: bool = Field(default=True, description="Emit the answer as `text_chunk`s")
    include_usage: bool = Field(
        default=True, description="Chat Completions: ask for `usage` in the last chunk"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_environment_keys(cls, data: Any) -> Any:
        # The engine's environment holds its own settings: no definition may read it.
        if isinstance(data, dict) and "api_key_env" in data:
            raise ValueError(
                "api_key_env is not supported: the engine's environment is not readable by "
                "workflows; store the key with POST /api/credentials and set `credential`"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> LlmConfig:
        if not self.messages and self.prompt is None:
            raise ValueError("an LLM node needs `prompt` or `messages`")
        if self.api_key is not None and self.credential is not None:
            raise ValueError("set `credential` or `api_key`, not both")
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise ValueError("tools: two tools have the same name")
        if self.tool_choice is not None and not self.tools:
            raise ValueError("tool_choice needs `tools`")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.name not in names:
            raise ValueError(f"tool_choice: no tool is named {self.tool_choice.name!r}")
        return self


BUILTIN_CONFIGS: dict[str, type[BaseModel]] = {
    NodeType.START: StartConfig,
    NodeType.END: EndConfig,
    NodeType.TEMPLATE: TemplateConfig,
    NodeType.CONDITION: ConditionConfig,
    NodeType.DELAY: DelayConfig,
    NodeType.API_CALL: ApiCallConfig,
    NodeType.PARALLEL: ParallelConfig,
    NodeType.LOOP: LoopConfig,
    NodeType.LLM: LlmConfig,
}

# The fields each built-in node type outputs, so references can be checked at write time.
BUILTIN_OUTPUTS: dict[str, frozenset[str] | None] = {
    NodeType.START: None,  # the declared inputs
    NodeType.END: None,  # the mapped outputs
    NodeType.TEMPLATE: frozenset({"text"}),
    NodeType.CONDITION: frozenset({"result"}),
    NodeType.DELAY: frozenset({"seconds"}),
    NodeType.API_CALL: API_RESPONSE_FIELDS,  # plus the names `outputs` maps
    NodeType.PARALLEL: frozenset(),
    NodeType.LOOP: frozenset({"iterations", "errors"}),
    NodeType.LLM: frozenset({"text", "tool_calls", "usage", "finish_reason", "model", "response"}),
}

BranchKey = tuple[str, str]  # (PARALLEL node id, the node its branch starts at)


class WorkflowGraph:
    """The shape of a definition: LOOP bodies, the scope of each node, PARALLEL branches.

    A LOOP's body is every node reachable from the target of its LOOP connection without passing
    through the LOOP node; connections from the body back to the LOOP node are its back edges.
    A node's scope is the innermost LOOP whose body holds it (None: the top level). Only
    connections whose ends exist are considered; validation reports the others.
    """

    def __init__(self, definition: WorkflowDefinition) -> None:
        self.types: dict[str, str] = {n.id: n.type for n in definition.nodes}
        self.connections = [
            c for c in definition.connections if c.source in self.types and c.target in self.types
        ]
        self.outgoing: dict[str, list[Connection]] = defaultdict(list)
        self.incoming: dict[str, list[Connection]] = defaultdict(list)
        for conn in self.connections:
            self.outgoing[conn.source].append(conn)
            self.incoming[conn.target].append(conn)
        # `on_error: <node id>`: an implicit edge, taken only when the node fails.
        self.error_targets: dict[str, str] = {
            n.id: n.on_error
            for n in definition.nodes
            if n.on_error not in ("fail", "continue") and n.on_error in self.types
        }
        self.loop_entries: dict[str, str] = {}
        for conn in self.connections:
            if conn.type == ConnectionType.LOOP and self.types[conn.source] == NodeType.LOOP:
                self.loop_entries.setdefault(conn.source, conn.target)
        self.bodies: dict[str, frozenset[str]] = {
            loop: self._body(loop, entry) for loop, entry in self.loop_entries.items()
        }
        # The innermost body holding a node is the smallest: assign from the largest down (on a
        # tie, the first LOOP declared is assigned last, so it wins).
        self.scope: dict[str, str | None] = dict.fromkeys(self.types)
        position = {loop: i for i, loop in enumerate(self.bodies)}
        for loop in sorted(
            self.bodies, key=lambda h: (len(self.bodies[h]), position[h]), reverse=True
        ):
            for node_id in self.bodies[loop]:
                self.scope[node_id] = loop
        self.back_edges = frozenset(
            (c.source, c.target)
            for c in self.connections
            if c.target in self.bodies and c.source in self.bodies[c.target]
        )

    def successors(self, node_id: str) -> list[str]:
        """Every node a connection or `on_error` leads to from `node_id`."""
        found = [c.target for c in self.outgoing[node_id]]
        if node_id in self.error_targets:
            found.append(self.error_targets[node_id])
        return found

    def is_forward(self, conn: Connection) -> bool:
        """Neither a LOOP connection (into a body) nor a back edge (out of one)."""
        return (
            conn.type != ConnectionType.LOOP and (conn.source, conn.target) not in self.back_edges
        )

    def forward_successors(self, node_id: str) -> list[str]:
        """Successors in the node's own scope: a LOOP's body and its back edges are left out."""
        found = [c.target for c in self.outgoing[node_id] if self.is_forward(c)]
        if node_id in self.error_targets:
            found.append(self.error_targets[node_id])
        return found

    def branches(self, parallel_id: str) -> list[tuple[str, frozenset[str]]]:
        """Each branch of a PARALLEL: its start node and the nodes only that branch reaches."""
        starts = [c.target for c in self.outgoing[parallel_id] if c.type == ConnectionType.PARALLEL]
        reach = {start: self.reach(start) for start in starts}
        # A node belongs to a branch when no other branch reaches it: counted once, not per pair.
        reached_by = Counter(node for nodes in reach.values() for node in nodes)
        return [
            (start, frozenset(n for n in reach[start] if reached_by[n] == 1)) for start in starts
        ]

    def reach(self, start: str, avoid: Iterable[str] = ()) -> set[str]:
        """Nodes reachable from `start` in its scope (itself included)."""
        return self._walk(start, self.forward_successors, set(avoid))

    def _body(self, loop: str, entry: str) -> frozenset[str]:
        if entry == loop:
            return frozenset()
        return frozenset(self._walk(entry, self.successors, {loop}))

    @staticmethod
    def _walk(start: str, step: Callable[[str], list[str]], avoid: set[str]) -> set[str]:
        seen = {start}
        queue = deque([start])
        while queue:
            for child in step(queue.popleft()):
                if child not in seen and child not in avoid:
                    seen.add(child)
                    queue.append(child)
        return seen
