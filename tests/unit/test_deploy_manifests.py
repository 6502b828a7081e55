"""The deployment files parse, reference files that exist, and set only settings the code reads."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from flowstream_engine.settings import EngineSettings
from flowstream_gateway.settings import GatewaySettings
from flowstream_history.settings import HistorySettings
from flowstream_launcher.nats_auth import (
    ISSUER_VARIABLE,
    SERVICE_IDENTITIES,
    NatsAuth,
    env_variable,
    render_deployed_authorization,
)
from flowstream_launcher.nats_server import nats_server_binary
from flowstream_launcher.settings import LauncherSettings
from flowstream_shared import subjects
from flowstream_shared.nats_access import Identity
from flowstream_shared.settings import DataSettings, TelemetrySettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
YAML_FILES = sorted(DEPLOY.rglob("*.yaml"))
# Read by the services' settings classes, plus the MongoDB URI the history store reads.
KNOWN = {
    f"FLOWSTREAM_{name.upper()}"
    for settings in (
        EngineSettings,
        GatewaySettings,
        HistorySettings,
        LauncherSettings,
        DataSettings,
        TelemetrySettings,
    )
    for name in settings.model_fields
} | {"FLOWSTREAM_MONGODB_URI"}
# Names that look like settings but are not: stream names and compose's own image variable.
NOT_SETTINGS = {
    subjects.RUNS_STREAM,
    subjects.EVENTS_STREAM,
    subjects.DEAD_LETTER_STREAM,
    "FLOWSTREAM_IMAGE",
}


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert _documents(path)


def test_kustomization_lists_files_that_exist_and_are_kubernetes_objects() -> None:
    (kustomization,) = _documents(KUBERNETES / "kustomization.yaml")
    for resource in kustomization["resources"]:
        for doc in _documents(KUBERNETES / resource):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), resource


def test_manifests_set_only_settings_the_services_read() -> None:
    used: set[str] = set()
    for path in [*YAML_FILES, DEPLOY.parent / "Dockerfile"]:
        used |= set(re.findall(r"\bFLOWSTREAM_[A-Z_]+\b", path.read_text()))
    assert used, "no settings found: the pattern is wrong"
    used -= NOT_SETTINGS
    assert used <= KNOWN, f"unknown settings: {sorted(used - KNOWN)}"


def test_the_deployed_nats_authorization_is_current_and_valid(tmp_path: Path) -> None:
    """deploy/nats/flowstream-auth.conf is what nats_access grants, and nats-server accepts the
    deployment's configuration with it (`nats-server -t`)."""
    conf = DEPLOY / "nats" / "flowstream-auth.conf"
    assert conf.read_text() == render_deployed_authorization(), "run `make docs`"
    auth = NatsAuth.generate()
    env = {env_variable(i): auth.passwords[i.value] for i in (*SERVICE_IDENTITIES, Identity.ADMIN)}
    env[ISSUER_VARIABLE] = auth.issuer_public_key
    checked = subprocess.run(
        [nats_server_binary(), "-c", str(DEPLOY / "nats" / "nats-server.conf"), "-t"],
        cwd=DEPLOY / "nats",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "is valid" in checked.stderr + checked.stdout
