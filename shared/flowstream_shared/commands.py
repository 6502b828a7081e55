"""Commands sent to the engine: a run to execute, and control of a running run."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowstream_shared import subjects
from flowstream_shared.apis import ApiSnapshot
from flowstream_shared.workflow import WorkflowDefinition

# Dify gives a run two ids: the run id and the task id used to stop it. Deriving one from the other
# with a fixed involution (XOR with a mask) lets any gateway replica map between them without a
# lookup. The mask leaves the version nibble and the variant bits alone, so the task id of a
# version-4 run id is itself a valid RFC 4122 version-4 UUID (docs/adr/0031).
_TASK_ID_MASK = 0x5A17_0F3C_9E2B_0D81_03E5_A7F1_B2D4_E6F8
# The first mask flipped the version nibble (task ids had version 0): such ids still map back.
_LEGACY_TASK_ID_MASK = 0x5A17_0F3C_9E2B_4D81_C3E5_A7F1_B2D4_E6F8
_UUID_VERSION_BITS = 0xF << 76
_UUID_VARIANT_BITS = 0b11 << 62
assert _TASK_ID_MASK & (_UUID_VERSION_BITS | _UUID_VARIANT_BITS) == 0


def task_id_for(run_id: str) -> str:
    """The task id of a run; applied to a task id it gives the run id back."""
    return str(uuid.UUID(int=uuid.UUID(run_id).int ^ _TASK_ID_MASK))


def run_id_for_task(task_id: str) -> str:
    """The run a task id stands for; raises ValueError when `task_id` is not a UUID."""
    parsed = uuid.UUID(task_id)
    mask = _TASK_ID_MASK if parsed.version else _LEGACY_TASK_ID_MASK
    return str(uuid.UUID(int=parsed.int ^ mask))


class RunOwner(BaseModel):
    """The run index entry (KV `flowstream_runs`, key = run id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    task_id: str
    workflow_id: str
    user_id: str
    created_at: float
    deadline: float | None = None
    execution_name: str | None = None
    # Dify's `user` the run was started for (None: started by the owner itself).
    end_user: str | None = None
    priority: int = subjects.DEFAULT_PRIORITY
    cached_from: str | None = None


class ResponseMode(StrEnum):
    STREAMING = "streaming"
    BLOCKING = "blocking"


class WorkflowSnapshot(BaseModel):
    """The exact definition a run executes: later edits of the workflow never change a run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    workflow_id: str
    version: int = Field(ge=1)
    definition: WorkflowDefinition
    # The registry APIs its API_CALL nodes name, as they were when the run was submitted.
    apis: dict[str, ApiSnapshot] = Field(default_factory=dict)


class DebugOptions(BaseModel):
    """A run under a debugger: it pauses before each top-level node (`step`) or before the
    named ones (`breakpoints`); `POST /api/executions/{id}/step` runs what is ready."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: bool = False
    breakpoints: list[str] = Field(default_factory=list, max_length=1_000)


class CacheEntryKey(BaseModel):
    """Where a run's result is cached (KV `flowstream_results`) and for how long."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    ttl_s: float


class CacheEntry(BaseModel):
    """A cached result: the run whose events answer later runs with the same key."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    workflow_id: str
    user_id: str
    created_at: float
    expires_at: float


class RunCommand(BaseModel):
    """Published on `flowstream.runs.submit`; one per run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    task_id: str
    workflow: WorkflowSnapshot
    inputs: dict[str, Any]
    user_id: str
    # Dify's `user`: the end user a service-API caller runs on behalf of (`sys.user_id`).
    end_user: str | None = None
    response_mode: ResponseMode = ResponseMode.STREAMING
    created_at: float = Field(description="Unix seconds when the run was accepted")
    deadline: float = Field(description="Unix seconds after which the run fails with a timeout")
    priority: int = Field(
        default=subjects.DEFAULT_PRIORITY,
        ge=0,
        lt=subjects.PRIORITY_BANDS,
        description="0 (lowest) to 9 (highest): engines take higher bands first",
    )
    debug: DebugOptions | None = None
    # The app key the run was started with (its id, never the key): per-key limits.
    app_key: str | None = None
    # Quota keys (KV `flowstream_rates`) that count this run until it ends: the engine that
    # ends it removes it from them.
    quota_keys: list[str] = Field(default_factory=list)
    # Store the result for reuse (a succeeded run writes a cache entry under this key).
    cache: CacheEntryKey | None = None
    # A cache hit: the run answers by replaying this earlier run's events, executing nothing.
    cached_from: str | None = None

    @property
    def owner(self) -> str:
        return subjects.owner_token(self.user_id)

    @property
    def subject(self) -> str:
        return subjects.submit_subject(self.run_id, self.priority, self.owner)


class ControlAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    # Run the nodes held at the pause announced at `pause_seq`, then pause before the next ones.
    STEP = "step"


class ControlCommand(BaseModel):
    """Stored in KV `flowstream_control` under the run id and published on its control subject."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: ControlAction
    reason: str = ""
    # STEP: the `seq` of the `workflow_paused` it releases, so a step is applied once, also by
    # an engine that takes the run over.
    pause_seq: int | None = None
