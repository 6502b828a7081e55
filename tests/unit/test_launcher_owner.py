"""`python -m flowstream_launcher owner <user>`: the subject token a user's events live under."""

from __future__ import annotations

import pytest
from flowstream_launcher.__main__ import main
from flowstream_shared import subjects


def test_owner_prints_the_users_subject_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["owner", "alice@example.com"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == subjects.owner_token("alice@example.com")
    assert f"flowstream.events.{out.strip()}.>" in err
