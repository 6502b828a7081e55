"""The deployment is checked, not only parsed: every Kubernetes manifest against the API schemas
(`kubernetes-validate --strict`, offline), the KEDA ScaledObject against the schema generated
from KEDA's CRD, the scaling threshold against the engine's concurrency, the history component's
patches against the Deployment they patch, and every series the dashboard and the alerts use
against the metrics the services register."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from flowstream_engine.metrics import EngineMetrics
from flowstream_gateway.metrics import GatewayMetrics
from flowstream_history.telemetry import HistoryMetrics
from flowstream_shared import subjects
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KEDA_VALIDATOR = ROOT / "tests" / "deploy_schemas" / "validate_keda.mjs"
# Not Kubernetes objects: Helm values and kustomize's own files.
NOT_MANIFESTS = {"nats-values.yaml", "kustomization.yaml"}
CRD_KINDS = {"ScaledObject"}
# Series of prometheus-nats-exporter as the NATS chart runs it (`-prefix=nats -jsz=all`); no
# exporter runs here, so these names are the one list checked by hand.
EXPORTER_SERIES = {
    "nats_consumer_num_pending",
    "nats_consumer_num_ack_pending",
    "nats_consumer_num_redelivered",
    "nats_stream_total_bytes",
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "le", "inf", "nan",
}  # fmt: skip


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> list[Path]:
    return sorted(p for p in KUBERNETES.rglob("*.yaml") if p.name not in NOT_MANIFESTS)


def test_every_manifest_passes_strict_schema_validation() -> None:
    core = [p for p in manifests() if not {d["kind"] for d in documents(p)} & CRD_KINDS]
    assert len(core) >= 10
    validate = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [validate, "--strict", "--quiet", *map(str, core)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scaled_object_matches_the_keda_crd() -> None:
    objects = [d for p in manifests() for d in documents(p) if d["kind"] in CRD_KINDS]
    assert [o["kind"] for o in objects] == ["ScaledObject"]
    node = shutil.which("node")
    assert node, "Node.js is needed (make test installs the validators with npm)"

    def check(candidate: list[Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [node, str(KEDA_VALIDATOR)],
            input=json.dumps(candidate),
            capture_output=True,
            text=True,
            check=False,
            cwd=KEDA_VALIDATOR.parent,
        )

    result = check(objects)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = json.loads(json.dumps(objects))
    broken[0]["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 192  # must be a string
    assert "lagThreshold must be string" in check(broken).stdout


def test_the_scaling_threshold_is_three_quarters_of_the_engine_concurrency() -> None:
    (config,) = documents(KUBERNETES / "configmap.yaml")
    (scaled,) = documents(KUBERNETES / "engine-scaledobject.yaml")
    concurrency = int(config["data"]["FLOWSTREAM_ENGINE_CONCURRENCY"])
    triggers = scaled["spec"]["triggers"]
    # One trigger per priority band's consumer; KEDA scales to the largest of them.
    assert {t["metadata"]["consumer"] for t in triggers} == {
        subjects.band_consumer(band) for band in range(subjects.PRIORITY_BANDS)
    } | ({subjects.ENGINE_CONSUMER} & {t["metadata"]["consumer"] for t in triggers})
    for trigger in triggers:
        assert int(trigger["metadata"]["lagThreshold"]) == concurrency * 3 // 4


def test_history_cannot_split_by_default_and_mongodb_is_required_for_more() -> None:
    (deployment,) = documents(KUBERNETES / "history-deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    volumes = spec["template"]["spec"]["volumes"]
    assert volumes[1]["persistentVolumeClaim"]["claimName"] == "flowstream-history-data"

    (component,) = documents(KUBERNETES / "components" / "history-mongodb" / "kustomization.yaml")
    patched = json.loads(json.dumps(deployment))
    for patch in component["patches"]:
        if patch["target"]["kind"] != "Deployment":
            continue
        for op in yaml.safe_load(patch["patch"]):
            *parents, last = op["path"].strip("/").split("/")
            node: Any = patched
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            key = int(last) if isinstance(node, list) else last
            assert op["op"] == "replace" and (key in node if isinstance(node, dict) else True)
            node[key] = op["value"]
    pod = patched["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mongo = next(e for e in container["env"] if e["name"] == "FLOWSTREAM_MONGODB_URI")
    assert mongo["valueFrom"]["secretKeyRef"]["optional"] is False
    assert patched["spec"]["replicas"] == 2
    assert pod["volumes"][1] == {"name": "data", "emptyDir": {"sizeLimit": "64Mi"}}


def series(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry can expose, labelled families with no child yet included."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def metric_names(expression: str) -> set[str]:
    text = re.sub(r'"[^"]*"', "", expression)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    words = re.findall(r"(?<![\w:.])[A-Za-z_:][\w:]*\b(?!\s*\()", text)
    return {w for w in words if w.lower() not in PROMQL_WORDS and not w.startswith("__")}


def expressions() -> dict[str, str]:
    dashboard = json.loads((DEPLOY / "grafana" / "flowstream-dashboard.json").read_text())
    found = {
        f"panel {panel['title']!r} {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = re.sub(
                r"label_values\((\w+),.*\)", r"\1", variable["query"]
            )
    (rules,) = documents(DEPLOY / "prometheus" / "flowstream-alerts.yaml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"]
    return found


def test_every_dashboard_and_alert_expression_names_existing_metrics() -> None:
    known = EXPORTER_SERIES.copy()
    for metrics in (EngineMetrics(), GatewayMetrics(), HistoryMetrics()):
        known |= series(metrics.registry)
    found = expressions()
    assert len(found) > 30
    used: set[str] = set()
    for where, expression in found.items():
        names = metric_names(expression)
        assert names, f"{where}: no metric in {expression!r}"
        assert names <= known, f"{where}: unknown {sorted(names - known)}"
        used |= names
    # The series an operator starts with are all on the dashboard.
    for wanted in (
        "flowstream_engine_run_duration_seconds_bucket",
        "flowstream_engine_queue_wait_seconds_bucket",
        "flowstream_history_consumer_lag",
        "flowstream_gateway_http_requests_total",
        "process_cpu_seconds_total",
    ):
        assert wanted in used


def test_the_name_check_sees_unknown_names() -> None:
    expression = 'sum by (le) (rate(flowstream_engine_runs_startd_total{status="x"}[5m]))'
    assert metric_names(expression) == {"flowstream_engine_runs_startd_total"}
