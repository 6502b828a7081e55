"""Every setting a process reads is in docs/configuration.md, so the table cannot fall behind."""

from __future__ import annotations

import re
from pathlib import Path

from flowstream_engine.settings import EngineSettings
from flowstream_gateway.settings import GatewaySettings
from flowstream_history.settings import HistorySettings
from flowstream_launcher.settings import LauncherSettings
from flowstream_shared.settings import TelemetrySettings

from tests.settings_reference import render

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = DOCS / "configuration.md"
REFERENCE = DOCS / "settings-reference.md"


def test_every_setting_is_documented() -> None:
    settings = {
        f"FLOWSTREAM_{name.upper()}"
        for cls in (
            EngineSettings,
            GatewaySettings,
            HistorySettings,
            LauncherSettings,
            TelemetrySettings,
        )
        for name in cls.model_fields
    }
    documented = set(re.findall(r"FLOWSTREAM_[A-Z_]+", DOC.read_text()))
    assert settings - documented == set()


def test_the_generated_settings_reference_is_current() -> None:
    assert REFERENCE.read_text() == render(), "stale: run `make docs`"
    assert "FLOWSTREAM_LOG_LEVEL" in render()
