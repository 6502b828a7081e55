"""History's record of a run handed over mid-node: no attempt stays `running` once it finished.

Real engines on real JetStream, history as its own process: an engine is stopped in the middle
of a DELAY, another one takes the run over, and the record is read as a client would read it
right after seeing the run finish.
"""

from __future__ import annotations

import json
from pathlib import Path

from flowstream_launcher.nats_server import NatsServer
from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.history import HistoryOp, RunQuery
from nats.aio.client import Client

from tests.integration.conftest import EngineFactory, command, submit
from tests.integration.test_engine_faults import node_started
from tests.integration.test_history_faults import history_process
from tests.integration.test_history_intake import ask
from tests.support import delay_then_template, run_events


async def test_no_attempt_stays_running_in_a_run_handed_over_mid_node(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory, tmp_path: Path
) -> None:
    async with history_process(nats_server, {"FLOWSTREAM_DATA_DIR": str(tmp_path)}):
        cmd = command(delay_then_template(1.5), {"name": "Ho"})
        owner = RunOwner(
            run_id=cmd.run_id,
            task_id=cmd.task_id,
            workflow_id=cmd.workflow.workflow_id,
            user_id=cmd.user_id,
            created_at=cmd.created_at,
        )
        index = await nc.jetstream().key_value(subjects.RUNS_BUCKET)
        await index.put(cmd.run_id, owner.model_dump_json().encode())
        finished = await nc.subscribe(run_events(cmd.run_id)[:-1] + "workflow_finished")
        first = await start_engine()
        await submit(nc, cmd)
        await node_started(nc, cmd.run_id, "wait")
        await start_engine()
        await first.stop()  # mid-DELAY: handed back at once, taken over by the other engine
        end = json.loads((await finished.next_msg(timeout=30)).data)

        query = RunQuery(user_id=cmd.user_id, run_id=cmd.run_id, applied_seq=end["seq"])
        reply = await ask(nc, HistoryOp.GET, query)

    assert reply.error is None, reply.error
    run, nodes = reply.result["run"], reply.result["nodes"]
    assert run["status"] == "succeeded" and run["last_seq"] == end["seq"]
    waits = [n for n in nodes if n["node_id"] == "wait"]
    assert sorted(n["status"] for n in waits) == ["stopped", "succeeded"]
    assert "running" not in {n["status"] for n in nodes}
