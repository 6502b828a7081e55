"""A NATS of its own with an identities file the launcher cannot read: it says which setting
to fix and starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowstream_launcher.nats_server import free_port
from flowstream_launcher.settings import LauncherSettings
from flowstream_launcher.stack import run_stack


async def test_an_unreadable_identities_file_stops_the_launcher_before_any_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = LauncherSettings(
        nats_url=f"nats://127.0.0.1:{free_port()}",
        nats_identities_file=tmp_path / "missing.json",
        data_dir=tmp_path / "data",
        gateway_port=free_port(),
        engine_port=free_port(),
        history_port=free_port(),
        examples_dir=tmp_path / "no-examples",
    )
    assert await run_stack(settings) == 1
    err = capsys.readouterr().err
    assert "FLOWSTREAM_NATS_IDENTITIES_FILE" in err and "missing.json" in err
    assert "could not start" not in err  # refused before any service was started
