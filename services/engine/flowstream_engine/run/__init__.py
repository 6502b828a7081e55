"""Executes one run: schedules ready nodes concurrently and emits every event of DESIGN §4.

- :mod:`.executor` — the run: its start, its halts (stop, failure, deadline), its one finish.
- :mod:`.scheduler` — one scope (the top level or one LOOP iteration): dead-path elimination.
- :mod:`.branches` — PARALLEL branches: `max_concurrent`, `wait_for_all`, their events.
- :mod:`.node` — one node: retries, timeout, `on_error`, `node_started`/`node_finished`.
- :mod:`.loop` — one LOOP node: its iterations and `loop_*` events.
"""

from flowstream_engine.run.common import STOPPED_BY_USER
from flowstream_engine.run.executor import RunExecutor

__all__ = ["STOPPED_BY_USER", "RunExecutor"]
