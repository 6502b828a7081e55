"""The pure parts of queueing: band order and starvation, slot sets, keys, subjects."""

from __future__ import annotations

import pytest
from flowstream_engine.dispatcher import LEGACY_BAND, BandOrder
from flowstream_shared import subjects
from flowstream_shared.slots import (
    Decision,
    SlotSet,
    decide,
    released,
    render_input_key,
    renewed,
    run_limits,
)
from flowstream_shared.workflow import WorkflowConfig
from pydantic import ValidationError


def test_bands_are_asked_highest_first() -> None:
    order = BandOrder(starvation_limit=10)
    assert order.order() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, LEGACY_BAND]


def test_an_empty_band_is_skipped_until_a_ready_message_names_it() -> None:
    order = BandOrder(starvation_limit=10)
    for band in order.bands:
        order.empty(band, order.generation[band])
    assert order.order() == []
    order.ready(3)
    assert order.order() == [3]


def test_a_ready_message_during_an_ask_keeps_the_band_listed() -> None:
    order = BandOrder(starvation_limit=10)
    asked_at = order.generation[4]
    order.ready(4)  # its command was stored after the ask that found the band empty
    order.empty(4, asked_at)
    assert 4 in order.order()


def test_a_band_passed_over_too_often_is_served_next() -> None:
    order = BandOrder(starvation_limit=3)
    for band in order.bands:
        if band not in (9, 0):
            order.empty(band, order.generation[band])
    served = []
    for _ in range(8):
        band = order.order()[0]
        served.append(band)
        order.served(band)
    # Band 9 always has work; band 0 still gets one pickup in every four.
    assert served == [9, 9, 9, 0, 9, 9, 9, 0]


def _decide(
    slots: SlotSet, run: str, limit: int, *, priority: int = 0, created: float = 0.0
) -> Decision:
    return decide(
        slots,
        run,
        limit=limit,
        priority=priority,
        created_at=created,
        now=100.0,
        hold_s=6.0,
        wait_s=18.0,
    )


def test_slots_are_granted_up_to_the_limit_then_runs_wait_in_line() -> None:
    slots = SlotSet()
    for i, run in enumerate(["a", "b"]):
        decision = _decide(slots, run, 2, created=i)
        assert decision.granted and decision.changed
        slots = decision.slots
    waiting = _decide(slots, "c", 2, created=3)
    assert not waiting.granted and waiting.position == 1
    slots = waiting.slots
    later = _decide(slots, "d", 2, created=4)
    assert later.position == 2
    slots = released(later.slots, "a")
    # The freed slot goes to the head of the line, not to whoever asks first.
    assert not _decide(slots, "d", 2, created=4).granted
    assert _decide(slots, "c", 2, created=3).granted


def test_a_higher_priority_waiter_goes_first_and_expired_slots_fall_free() -> None:
    slots = SlotSet(holders={"dead": 90.0, "live": 200.0})  # `dead` stopped renewing at 90
    decision = _decide(slots, "x", 2, created=1)
    assert decision.granted and "dead" not in decision.slots.holders
    full = decision.slots
    low = _decide(full, "low", 2, priority=0, created=1)
    high = _decide(low.slots, "high", 2, priority=9, created=2)
    assert high.position == 1 and high.slots.position("low", 2) == 2


def test_waiting_is_written_again_only_when_its_entry_needs_renewing() -> None:
    full = SlotSet(holders={"a": 200.0})
    joined = _decide(full, "w", 1)
    assert joined.changed
    assert not _decide(joined.slots, "w", 1).changed


def test_a_lapsed_slot_is_not_renewed_back() -> None:
    slots = SlotSet(holders={"a": 200.0})
    assert renewed(slots, "gone", 300.0) == slots
    assert renewed(slots, "a", 300.0).holders == {"a": 300.0}


def test_limits_come_in_a_fixed_order_and_zero_is_none() -> None:
    limits = run_limits(
        workflow_id="wf",
        user_id="u",
        app_key="k",
        inputs={"customer": "acme"},
        max_concurrent_runs=2,
        concurrency_key="{{input.customer}}",
        concurrency_limit=1,
        user_limit=5,
        app_key_limit=0,
    )
    assert [limit.limit for limit in limits] == [2, 1, 5]
    assert limits[1].name == "concurrency_limit of key 'acme'"


def test_input_keys_render_references_only() -> None:
    assert render_input_key("c-{{input.id}}-{{ input.n }}", {"id": "x", "n": 3}) == "c-x-3"
    assert render_input_key("{{input.missing}}", {}) == ""
    with pytest.raises(ValidationError):
        WorkflowConfig(concurrency_key="{{ input.id.__class__ }}")
    with pytest.raises(ValidationError):
        WorkflowConfig(cache={"key": "{% for x in y %}{% endfor %}"})


def test_submit_subjects_carry_band_owner_and_run() -> None:
    subject = subjects.submit_subject("r-1", 7, "owner")
    assert subject == "flowstream.runs.submit.7.owner.r-1"
    parsed = subjects.parse_submit_subject(subject)
    assert parsed == subjects.SubmitAddress(7, "owner", "r-1")
    assert subjects.parse_submit_subject("flowstream.runs.submit.r-1") is None
    with pytest.raises(ValueError, match="priority"):
        subjects.submit_subject("r", 10, "o")
