"""Task ids: valid RFC 4122 UUIDs, paired with run ids by an involution (no lookup)."""

from __future__ import annotations

import uuid

import pytest
from flowstream_shared.commands import run_id_for_task, task_id_for

from tests.rfc4122 import is_rfc4122_uuid

RUN_IDS = [str(uuid.uuid4()) for _ in range(2000)]


def test_a_task_id_is_a_version_4_rfc4122_uuid() -> None:
    for run_id in RUN_IDS:
        task_id = uuid.UUID(task_id_for(run_id))
        assert task_id.version == 4 and task_id.variant == uuid.RFC_4122
        assert is_rfc4122_uuid(str(task_id))


def test_task_and_run_ids_map_to_each_other_without_a_lookup() -> None:
    for run_id in RUN_IDS:
        task_id = task_id_for(run_id)
        assert task_id != run_id
        assert run_id_for_task(task_id) == run_id
        assert task_id_for(task_id) == run_id  # an involution
    assert len({task_id_for(r) for r in RUN_IDS}) == len(RUN_IDS)


def test_task_ids_issued_before_kept_their_run() -> None:
    # Issued with the first mask, which zeroed the version: such a task id still stops its run.
    run_id = "1f2115c1-8613-4448-8a02-7c695d83f6e0"
    legacy_task_id = str(uuid.UUID(int=uuid.UUID(run_id).int ^ 0x5A170F3C9E2B4D81C3E5A7F1B2D4E6F8))
    assert uuid.UUID(legacy_task_id).version is None
    assert run_id_for_task(legacy_task_id) == run_id


def test_a_task_id_that_is_not_a_uuid_is_refused() -> None:
    with pytest.raises(ValueError, match="badly formed"):
        run_id_for_task("not-a-task")
