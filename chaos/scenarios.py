"""The scenarios: a topology, a store, how many engines and gateways, and the faults struck in
turn while the clients load the stack."""

from __future__ import annotations

from dataclasses import dataclass

from chaos import faults
from chaos.faults import Fault


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    faults: tuple[Fault, ...]
    every_s: float  # one fault this often
    cluster: bool = False
    ferretdb: bool = False
    engines: int = 2
    gateways: int = 2

    @property
    def topology(self) -> str:
        return "3-node JetStream cluster, replicas 3" if self.cluster else "single nats-server -js"

    @property
    def store(self) -> str:
        return "FerretDB (MongoDB wire)" if self.ferretdb else "SQLite"


SCENARIOS = (
    Scenario(
        "engine",
        "engines SIGKILLed and SIGTERMed in turn under load, each started again",
        (faults.engine_kill, faults.engine_term),
        every_s=7.0,
    ),
    Scenario(
        "nats",
        "the NATS server SIGKILLed and SIGTERMed in turn, started again on its store",
        (faults.nats_kill, faults.nats_term),
        every_s=12.0,
    ),
    Scenario(
        "cluster",
        "the event stream's leader, then the meta leader, SIGKILLed and started again",
        (faults.stream_leader_kill, faults.meta_leader_kill),
        every_s=12.0,
        cluster=True,
    ),
    Scenario(
        "history",
        "history SIGKILLed; the SQLite store locked by another process's exclusive transaction",
        (faults.history_kill, faults.sqlite_lock),
        every_s=8.0,
    ),
    Scenario(
        "ferretdb",
        "history on FerretDB; FerretDB stopped for a while, then started again",
        (faults.ferretdb_stop,),
        every_s=10.0,
        ferretdb=True,
    ),
    Scenario(
        "gateway",
        "gateways SIGTERMed and SIGKILLed in turn; clients resume on the other gateway",
        (faults.gateway_term, faults.gateway_kill),
        every_s=6.0,
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
