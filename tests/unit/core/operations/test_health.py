"""The health checks judge silence, label lag and champion age from the log, the labels and the registry."""

from __future__ import annotations

import datetime as dt
import os
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops import layout
from airflow_mlops.core.operations import health, incidents

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 12, 10, 12, 0, tzinfo=dt.UTC)


class FakeRegistry:
    def __init__(self, version="3", promoted_at=NOW - dt.timedelta(days=5)):
        self.version, self.promoted_at = version, promoted_at

    def champion(self, name):
        if self.version is None:
            return None
        created = int((NOW - dt.timedelta(days=90)).timestamp() * 1000)
        return SimpleNamespace(version=self.version, creation_timestamp=created)

    def promotion_history(self, name):
        if self.promoted_at is None:
            return []
        return [{"id": "a", "to_version": "1", "at": "2026-01-01T00:00:00+00:00"},
                {"id": "b", "to_version": self.version, "at": self.promoted_at.isoformat()}]  # fmt: skip


def _spec(spec, **fields):
    return spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update=fields)})


def _log(pipeline, at, name="part-x.parquet"):
    folder = layout.prediction_log_partition(pipeline, at.date())
    os.makedirs(folder, exist_ok=True)
    table = pa.table({"request_id": ["r1", "r2"], "logged_at": pa.array([at - dt.timedelta(minutes=5), at],
                                                                         pa.timestamp("us", tz="UTC"))})  # fmt: skip
    pq.write_table(table, os.path.join(folder, name))


def _label(pipeline, at, name="labels-1.parquet"):
    folder = layout.labels_dir(pipeline)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    pq.write_table(pa.table({"request_id": ["r1"], "churned": [1]}), path)
    os.utime(path, (at.timestamp(), at.timestamp()))


def test_silence_is_breached_when_the_newest_prediction_is_older_than_the_limit(mlops_home, spec):
    spec = _spec(spec, max_silence_hours=6.0)
    _log(spec.name, NOW - dt.timedelta(days=1, hours=2), "part-20261209T100000.parquet")
    _log(spec.name, NOW - dt.timedelta(hours=7), "part-20261210T050000.parquet")
    finding = health.judge(spec, health.observe(spec, FakeRegistry(), NOW))["silence"]
    assert finding["breached"] and finding["since"] == "2026-12-10T05:00:00+00:00"  # the footer's newest logged_at
    assert "7.0 h" in finding["summary"]
    _log(spec.name, NOW - dt.timedelta(minutes=30), "part-20261210T113000.parquet")
    finding = health.judge(spec, health.observe(spec, FakeRegistry(), NOW))["silence"]
    assert not finding["breached"] and finding["since"] == "2026-12-10T11:30:00+00:00"


def test_silence_with_an_empty_log_counts_from_the_promotion(mlops_home, spec):
    spec = _spec(spec, max_silence_hours=6.0)
    fresh = health.judge(spec, health.observe(spec, FakeRegistry(promoted_at=NOW - dt.timedelta(hours=2)), NOW))
    assert not fresh["silence"]["breached"]  # promoted 2 h ago: not silent yet
    stale = health.judge(spec, health.observe(spec, FakeRegistry(promoted_at=NOW - dt.timedelta(hours=8)), NOW))
    assert stale["silence"]["breached"] and "since v3 was promoted" in stale["silence"]["summary"]
    old = health.judge(spec, health.observe(spec, FakeRegistry(promoted_at=NOW - dt.timedelta(days=30)), NOW))
    assert old["silence"]["breached"] and old["silence"]["since"] is None  # none in the days scanned


def test_fractions_of_an_hour_are_limits_too(mlops_home, spec):
    spec = _spec(spec, max_silence_hours=0.05)  # 3 minutes
    _log(spec.name, NOW - dt.timedelta(minutes=4))
    finding = health.judge(spec, health.observe(spec, FakeRegistry(), NOW))["silence"]
    assert finding["breached"] and "4 min" in finding["summary"]


def test_label_lag_counts_from_the_newest_label_file_else_from_the_promotion(mlops_home, spec):
    spec = _spec(spec, max_label_lag_hours=24.0)
    assert health.judge(spec, health.observe(spec, FakeRegistry(), NOW))["label_lag"]["breached"]  # none in 5 days
    _label(spec.name, NOW - dt.timedelta(hours=30), "old.parquet")
    assert health.judge(spec, health.observe(spec, FakeRegistry(), NOW))["label_lag"]["breached"]
    _label(spec.name, NOW - dt.timedelta(hours=3), "new.parquet")
    finding = health.judge(spec, health.observe(spec, FakeRegistry(), NOW))["label_lag"]
    assert not finding["breached"] and finding["since"] == (NOW - dt.timedelta(hours=3)).isoformat()


def test_champion_age_counts_from_its_newest_promotion_else_from_its_creation(mlops_home, spec):
    spec = _spec(spec, max_champion_age_days=30.0)
    assert not health.judge(spec, health.observe(spec, FakeRegistry(), NOW))["champion_age"]["breached"]
    old = health.judge(spec, health.observe(spec, FakeRegistry(promoted_at=NOW - dt.timedelta(days=31)), NOW))
    assert old["champion_age"]["breached"] and "31.0 days" in old["champion_age"]["summary"]
    unrecorded = health.judge(spec, health.observe(spec, FakeRegistry(promoted_at=None), NOW))
    assert unrecorded["champion_age"]["breached"]  # created 90 days ago, no move recorded


def test_nothing_is_judged_without_a_champion_or_with_every_check_off(mlops_home, spec):
    assert health.judge(_spec(spec, max_silence_hours=1.0), health.observe(spec, FakeRegistry(None), NOW)) == {}
    assert health.enabled_checks(spec) == {}
    result, waiting = health.check_health(spec, FakeRegistry(), "r1", True, NOW)
    assert result["findings"] == {} and result["open"] == [] and waiting == []


def test_check_health_opens_then_recovers_and_writes_the_messages_first(mlops_home, spec):
    spec = _spec(spec, max_silence_hours=1.0)
    _log(spec.name, NOW - dt.timedelta(hours=2))
    result, waiting = health.check_health(spec, FakeRegistry(), "r1", True, NOW)
    assert result["opened"] == ["silence"] and [i["check"] for i in result["open"]] == ["silence"]
    assert waiting == [m["id"] for m in incidents.load(spec.name)["outbox"]] and len(waiting) == 1
    again, waiting_again = health.check_health(spec, FakeRegistry(), "r1", True, NOW + dt.timedelta(minutes=1))
    assert again["opened"] == [] and waiting_again == waiting  # the retry: the same message, not a second one
    _log(spec.name, NOW + dt.timedelta(minutes=1), "part-y.parquet")
    cleared, _ = health.check_health(spec, FakeRegistry(), "r2", True, NOW + dt.timedelta(minutes=2))
    assert cleared["cleared"] == ["silence"] and cleared["open"] == []


def test_the_late_run_incident_closes_only_when_the_drift_check_did_not_fail(mlops_home, spec):
    spec = _spec(spec, max_run_minutes=10.0)
    state = incidents.empty()
    incidents.open_incident(state, health.LATE, "run r0 late", None, spec.name, NOW, "deadline")
    incidents.save(spec.name, state)
    failed, _ = health.check_health(spec, FakeRegistry(), "r1", False, NOW)
    assert failed["cleared"] == [] and [i["check"] for i in failed["open"]] == [health.LATE]
    ok, _ = health.check_health(spec, FakeRegistry(), "r2", True, NOW)
    assert ok["cleared"] == [health.LATE]


@pytest.mark.parametrize(
    ("seconds", "text"), [(95, "95 s"), (240, "4 min"), (3 * 3600 + 1800, "3.5 h"), (41.2 * 86400, "41.2 days")]
)
def test_durations_read_as_a_person_says_them(seconds, text):
    assert health.duration(seconds) == text
