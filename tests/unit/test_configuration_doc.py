"""Every setting a process reads is in docs/configuration.md, so the table cannot fall behind."""

from __future__ import annotations

import re
from pathlib import Path

from flowstream_engine.settings import EngineSettings
from flowstream_gateway.settings import GatewaySettings
from flowstream_history.settings import HistorySettings
from flowstream_launcher.settings import LauncherSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    settings = {
        f"FLOWSTREAM_{name.upper()}"
        for cls in (EngineSettings, GatewaySettings, HistorySettings, LauncherSettings)
        for name in cls.model_fields
    }
    documented = set(re.findall(r"FLOWSTREAM_[A-Z_]+", DOC.read_text()))
    assert settings - documented == set()
