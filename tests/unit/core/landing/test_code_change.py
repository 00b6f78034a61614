"""When a change of what is trained fires: once per (fingerprint, champion), never for what was trained."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_mlops.core.landing import code_change
from airflow_mlops.core.landing.code_change import MAX_FIRED, decide, fired_list, remember

pytestmark = pytest.mark.unit


def test_fires_when_the_champion_was_trained_with_another_fingerprint():
    decision = decide("new", "3", "old", trained_elsewhere=False, fired=[])
    assert decision.event is not None
    assert decision.event["fingerprint"] == "new" and decision.event["champion_version"] == "3"
    assert "old -> new" in decision.event["reason"] and "v3" in decision.event["reason"]


@pytest.mark.parametrize(
    ("champion", "champion_fp", "trained", "why"),
    [
        (None, None, False, "no champion"),
        ("1", None, False, "no training_fingerprint tag"),
        ("1", "new", False, "was trained with this spec"),
        ("1", "old", True, "already trained with new"),
    ],
)
def test_no_event_without_something_to_compare_or_once_trained(champion, champion_fp, trained, why):
    decision = decide("new", champion, champion_fp, trained_elsewhere=trained, fired=[])
    assert decision.event is None and why in decision.why


def test_once_fired_the_same_change_stays_quiet_and_a_new_champion_or_fingerprint_fires_again():
    first = decide("new", "3", "old", False, []).event
    assert first is not None
    fired = remember([], first, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert fired == [{"fingerprint": "new", "champion_version": "3", "at": "2026-12-02T00:00:00+00:00"}]
    assert decide("new", "3", "old", False, fired).event is None  # the run is queued or running
    assert decide("newer", "3", "old", False, fired).event is not None  # another edit meanwhile
    assert decide("new", "4", "older", False, fired).event is not None  # another champion


def test_the_memory_is_bounded_and_survives_odd_stored_values():
    event = decide("f", "1", "g", False, []).event
    assert event is not None
    fired: list = []
    for _ in range(MAX_FIRED + 5):
        fired = remember(fired, event)
    assert len(fired) == MAX_FIRED
    assert fired_list(None) == [] and fired_list("junk") == [] and fired_list([{"x": 1}, 3]) == []
    assert fired_list(fired) == fired
    assert code_change.FIRED_KEY == "fired"
