"""Landing triggers: serialize round-trips; run() claims files and fires one event."""

from __future__ import annotations

import asyncio

import pytest

from airflow_mlops.triggers.landing import LandingFilesPresentTrigger, LandingZoneTrigger

pytestmark = pytest.mark.unit


def test_landing_zone_trigger_serialize_round_trip(tmp_path):
    trigger = LandingZoneTrigger(inbox=str(tmp_path / "in"), destination=str(tmp_path / "lake"), poll_interval=0.1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops.triggers.landing.LandingZoneTrigger"
    assert LandingZoneTrigger(**kwargs).serialize() == (classpath, kwargs)


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    return None


def test_files_landing_together_fire_one_event_and_are_claimed_once(tmp_path):
    inbox, lake = tmp_path / "in", tmp_path / "lake"
    inbox.mkdir()
    for name in ("a.parquet", "b.parquet", ".partial.parquet"):
        (inbox / name).write_bytes(b"x")
    trigger = LandingZoneTrigger(inbox=str(inbox), destination=str(lake), poll_interval=0.05, min_age_seconds=0)
    event = asyncio.run(asyncio.wait_for(_first_event(trigger), 5))
    assert [uri.rsplit("-", 1)[-1] for uri in event.payload["claimed"]] == ["a.parquet", "b.parquet"]
    assert sorted(p.name for p in lake.iterdir()) == sorted(u.rsplit("/", 1)[-1] for u in event.payload["claimed"])
    assert sorted(p.name for p in inbox.iterdir()) == [".partial.parquet"]
    with pytest.raises(TimeoutError):  # nothing new: the restarted trigger waits instead of re-firing
        asyncio.run(asyncio.wait_for(_first_event(trigger), 0.3))


def test_files_present_trigger_reports_without_claiming(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n")
    trigger = LandingFilesPresentTrigger(inbox=str(tmp_path), poll_interval=0.05)
    classpath, kwargs = trigger.serialize()
    assert LandingFilesPresentTrigger(**kwargs).serialize() == (classpath, kwargs)
    event = asyncio.run(asyncio.wait_for(_first_event(trigger), 5))
    assert event.payload == {"status": "success", "files": [f"{tmp_path}/x.csv"]}
    assert (tmp_path / "x.csv").exists()
