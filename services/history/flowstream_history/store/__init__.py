"""The execution store: one protocol, two implementations (SQLite by default, MongoDB when set).

Reads never wait behind the writer: SQLite reads go through connections of their own (WAL), and
MongoDB's client gives each concurrent operation its own pooled connection.
"""

from __future__ import annotations

from typing import Protocol

from flowstream_shared.history import (
    ListQuery,
    NodeExecutionRecord,
    RunPage,
    RunRecord,
    TimelineEntry,
)

from flowstream_history.projection import Owner, ProjectionBatch


class StoreUnavailable(Exception):
    """The database cannot be reached or refused a write: retry later, the events are kept."""


class ExecutionStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def apply(self, batch: ProjectionBatch) -> None:
        """Write the batch durably; raise StoreUnavailable when that is not possible now."""
        ...

    async def owners(self, run_ids: list[str]) -> dict[str, Owner]:
        """The owner of each of these runs that is recorded with one."""
        ...

    async def runs_seq(self) -> int:
        """The run index revision the recorded registrations reach (0: none)."""
        ...

    async def applied(self, user_id: str, run_id: str, seq: int) -> bool:
        """Whether the user's run is recorded with every one of its events up to `seq`."""
        ...

    async def get_run(self, user_id: str, run_id: str) -> RunRecord | None: ...

    async def list_runs(self, query: ListQuery) -> RunPage: ...

    async def nodes(self, run_id: str) -> list[NodeExecutionRecord]: ...

    async def timeline(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEntry]: ...

    async def runs_for_stats(
        self, user_id: str, workflow_id: str, limit: int
    ) -> list[RunRecord]: ...

    async def nodes_for_stats(
        self, workflow_id: str, run_ids: list[str]
    ) -> list[NodeExecutionRecord]: ...

    async def count_runs(
        self, user_id: str, status: str | None, created_after: float | None
    ) -> int: ...

    async def active_runs(
        self, user_id: str, limit: int
    ) -> list[tuple[RunRecord, list[NodeExecutionRecord]]]: ...
