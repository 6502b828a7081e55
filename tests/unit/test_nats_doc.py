"""docs/nats.md holds the permissions each identity is granted, generated from the code."""

from __future__ import annotations

from pathlib import Path

from flowstream_launcher.nats_doc import refresh

DOC = Path(__file__).resolve().parents[2] / "docs" / "nats.md"


def test_the_permission_table_is_current() -> None:
    text = DOC.read_text()
    assert refresh(text) == text, "run `make docs`"
