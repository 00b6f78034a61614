"""Landing triggers: serialize round-trips with a stable hash; run() claims files and fires one event."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from airflow.triggers.base import BaseEventTrigger

from airflow_mlops.core.landing import delivery
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.triggers.landing import DATA_SUFFIXES, LandingFilesPresentTrigger, LandingZoneTrigger

pytestmark = pytest.mark.unit


def test_landing_zone_trigger_serialize_round_trip(tmp_path):
    trigger = LandingZoneTrigger(inbox=str(tmp_path / "in"), destination=str(tmp_path / "lake"), poll_interval=0.1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops.triggers.landing.LandingZoneTrigger"
    assert kwargs["redeliver_after_seconds"] == 3600.0 and kwargs["max_deliveries"] == 5
    assert LandingZoneTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_watcher_hash_is_stable_across_parses_and_tells_inboxes_apart(tmp_path):
    """Airflow matches a watcher to its trigger row by BaseEventTrigger.hash(classpath, kwargs)."""

    def parsed(inbox: str) -> int:
        return BaseEventTrigger.hash(*LandingZoneTrigger(inbox=inbox, destination=str(tmp_path / "lake")).serialize())

    assert parsed(str(tmp_path / "in")) == parsed(str(tmp_path / "in"))  # a re-parse keeps the same trigger
    assert parsed(str(tmp_path / "in")) != parsed(str(tmp_path / "other"))


def test_default_suffixes_are_what_ingestion_reads():
    from airflow_mlops.core.data.sources import SUFFIXES

    assert set(DATA_SUFFIXES) == set(SUFFIXES)


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    return None


def _event(trigger, timeout=5.0):
    return asyncio.run(asyncio.wait_for(_first_event(trigger), timeout))


def test_files_landing_together_fire_one_event_and_are_claimed_once(tmp_path):
    inbox, lake = tmp_path / "in", tmp_path / "lake"
    inbox.mkdir()
    for name in ("a.parquet", "b.csv", "c.jsonl", ".partial.parquet", "notes.txt"):
        (inbox / name).write_bytes(name.encode())  # content of its own: equal content is a duplicate
    trigger = LandingZoneTrigger(inbox=str(inbox), destination=str(lake), poll_interval=0.05, min_age_seconds=0)
    event = _event(trigger)
    payload = event.payload
    assert [uri.rsplit("-", 1)[-1] for uri in payload["claimed"]] == ["a.parquet", "b.csv", "c.jsonl"]
    assert payload["delivery"] == 1 and payload["claim_uri"].endswith(payload["claim_id"])
    assert sorted(p.name for p in lake.iterdir()) == sorted(u.rsplit("/", 1)[-1] for u in payload["claimed"])
    assert sorted(p.name for p in inbox.iterdir()) == [".partial.parquet", "notes.txt"]
    manifest = json.loads((tmp_path / "_claims" / "lake" / payload["claim_id"] / "_manifest.json").read_text())
    assert manifest["state"] == "claimed" and manifest["claimed"] == payload["claimed"]
    assert json.dumps(payload)  # the payload is stored in the asset event: JSON only
    with pytest.raises(TimeoutError):  # nothing new: the restarted trigger waits instead of re-firing
        _event(trigger, 0.3)


def test_a_storage_error_does_not_end_the_trigger(tmp_path, monkeypatch):
    """A trigger that raises is restarted on every triggerer loop: run() must back off instead."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.parquet").write_bytes(b"x")
    real, calls = landing.claim, []

    def flaky(*args, **kwargs):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise PermissionError("denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(landing, "claim", flaky)
    trigger = LandingZoneTrigger(inbox=str(inbox), destination=str(tmp_path / "lake"), poll_interval=0.05,
                                 min_age_seconds=0)  # fmt: skip
    event = _event(trigger)
    assert len(event.payload["claimed"]) == 1 and len(calls) == 2
    assert calls[1] - calls[0] >= 0.1  # backed off (poll_interval * 2) before trying again


def test_files_present_trigger_reports_without_claiming(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n")
    trigger = LandingFilesPresentTrigger(inbox=str(tmp_path), poll_interval=0.05)
    classpath, kwargs = trigger.serialize()
    assert LandingFilesPresentTrigger(**kwargs).serialize() == (classpath, kwargs)
    event = _event(trigger)
    assert event.payload == {"status": "success", "files": [f"{tmp_path}/x.csv"]}
    assert (tmp_path / "x.csv").exists()


def test_files_present_trigger_waits_for_a_file_to_settle(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"x")
    trigger = LandingFilesPresentTrigger(inbox=str(tmp_path), poll_interval=0.05, min_age_seconds=60)
    with pytest.raises(TimeoutError):
        _event(trigger, 0.3)
    os.utime(path, (time.time() - 120, time.time() - 120))
    assert _event(trigger).payload["files"] == [str(path)]


def test_the_trigger_checks_locks_older_than_its_redelivery_delay(tmp_path, monkeypatch):
    """An S3 lock that blocks a file for longer than a redelivery is checked for being stale."""
    seen = []

    def claim(*args, **kwargs):
        seen.append(kwargs)
        return None

    monkeypatch.setattr(landing, "claim", claim)
    monkeypatch.setattr(delivery, "redeliver_due", lambda *args, **kwargs: None)
    trigger = LandingZoneTrigger(inbox=str(tmp_path / "in"), destination=str(tmp_path / "lake"), poll_interval=0.05,
                                 redeliver_after_seconds=120.0)  # fmt: skip
    with pytest.raises(TimeoutError):
        _event(trigger, 0.2)
    assert seen and seen[0]["stale_lock_seconds"] == 120.0
