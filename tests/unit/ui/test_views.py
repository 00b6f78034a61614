"""The model page's pure parts: what it may serve, what it calls servable, alerts, the cache."""

from __future__ import annotations

import pytest

from airflow_mlops.ui import monitoring_view, quality_view, registry_view
from airflow_mlops.ui.mlflow_reader import TtlCache


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("runs/manual__1/validate/report.json", True),
        ("runs/manual__1/validate/data_docs/index.html", True),
        ("runs/manual__1/validate/data_docs/static/styles/data_docs_custom_styles.css", True),
        ("quarantine/manual__1/a b.csv.report.json", True),
        ("quarantine/manual__1/a b.csv", True),
        ("runs/manual__1/train/model.pkl", False),
        ("runs/../../secrets/validate/x", False),
        ("runs/x/validate/../../../etc/passwd", False),
        ("lake/labeled/a.parquet", False),
        ("quarantine/x/../../lake/a.csv", False),
        ("prediction_log/date=2026-01-01/a.parquet", False),
    ],
)
def test_only_validation_output_and_quarantine_can_be_served(path, ok):
    assert quality_view.servable_path(path) is ok


def test_the_page_uses_the_registry_names_core_writes():
    from airflow_mlops.core.registry import client, promotion

    assert registry_view.HISTORY_TAG == client.HISTORY_TAG and registry_view.CHAMPION_ALIAS == client.CHAMPION_ALIAS
    assert registry_view.PENDING_TAG == promotion.PENDING_TAG


def test_unservable_names_each_reason_as_the_rollback_would():
    assert registry_view.unservable({"gate": "passed", "onnx_uri": "runs:/r/onnx/model.onnx"}) == []
    reasons = registry_view.unservable({"gate": "failed", "gate_reasons": "recall dropped"})
    assert reasons == ["gate failed: recall dropped", "no parity-checked ONNX graph"]
    assert registry_view.unservable({"onnx_uri": "x"}) == ["gate never ran"]


def test_version_metrics_skip_the_lineage_tags_and_unreadable_values():
    tags = {
        "test_roc_auc": "0.810000",
        "test_fingerprint": "abc",
        "test_uri": "s3://b/t",
        "test_f1": "n/a",
        "gate": "passed",
    }
    assert registry_view.version_metrics(tags) == {"roc_auc": 0.81}


def test_an_alert_is_open_until_a_move_comes_after_it():
    runs = {"latest": {"retrain": ["drift"], "at": "2026-12-01T10:00:00+00:00", "airflow_run_id": "m1"}}
    assert monitoring_view.open_alert(runs, [])["reasons"] == ["drift"]
    assert monitoring_view.open_alert(runs, [{"at": "2026-12-01T09:00:00+00:00"}]) is not None
    assert monitoring_view.open_alert(runs, [{"at": "2026-12-01T11:00:00+00:00"}]) is None
    assert monitoring_view.open_alert({"latest": {**runs["latest"], "retrain": []}}, []) is None


def test_the_cache_answers_within_its_ttl_and_asks_again_after():
    now = [0.0]
    calls = []
    cache = TtlCache(10.0, clock=lambda: now[0], stale_for=10.0)

    def compute():
        calls.append(now[0])
        return len(calls)

    assert cache.get(("k",), compute) == 1 and cache.get(("k",), compute) == 1
    now[0] = 10.5
    assert cache.get(("k",), compute) == 2 and calls == [0.0, 10.5]
    cache.clear()
    assert cache.get(("k",), compute) == 3


def test_page_links_never_carry_the_tracking_credentials():
    from airflow_mlops.ui.mlflow_reader import MlflowReader

    reader = MlflowReader("https://bob:hunter2@mlflow.example:8443/base")
    try:
        assert reader.run_url("3", "r1") == "https://mlflow.example:8443/base/#/experiments/3/runs/r1"
        assert "hunter2" not in reader.version_url("m", "2") and "bob" not in reader.ui_base
    finally:
        reader.close()
    with pytest.raises(ValueError, match="over HTTP"):
        MlflowReader("sqlite:///mlflow.db")


def test_an_expired_answer_is_served_while_one_thread_asks_again():
    import threading

    now = [0.0]
    asked = threading.Event()
    release = threading.Event()
    calls = []
    cache = TtlCache(10.0, clock=lambda: now[0], stale_for=60.0)

    def compute():
        calls.append(now[0])
        if len(calls) > 1:
            asked.set()
            release.wait(5)
        return len(calls)

    assert cache.get(("k",), compute) == 1
    now[0] = 30.0
    assert cache.get(("k",), compute) == 1 and cache.get(("k",), compute) == 1  # stale, no wait
    assert asked.wait(5) and len(calls) == 2  # one refresh for both reads
    release.set()
    for _ in range(100):
        if cache.get(("k",), compute) == 2:
            break
        threading.Event().wait(0.01)
    assert cache.get(("k",), compute) == 2
    now[0] = 200.0  # older than stale_for: the read waits for a fresh answer
    assert cache.get(("k",), compute) == 3


def test_a_move_in_progress_is_not_taken_for_a_hand_moved_alias():
    import json

    from airflow_mlops.spec import load_spec
    from tests.conftest import EXAMPLE_SPEC

    spec = load_spec(EXAMPLE_SPEC)
    history = json.dumps([{"to_version": "1", "at": "t1", "by": "a", "reason": "r"}])
    model = {"aliases": {"champion": "2"}, "tags": {"promotion_history": history}}
    assert registry_view.champion(spec, model, [])["alias_mismatch"]["alias_version"] == "2"
    model["tags"]["promotion_pending"] = json.dumps({"to_version": "2"})
    assert registry_view.champion(spec, model, [])["alias_mismatch"] is None


@pytest.mark.unit
def test_the_page_shows_open_health_incidents_and_the_newest_closed_ones(mlops_home):
    import datetime as dt

    from airflow_mlops.core.operations import incidents

    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    assert monitoring_view.incidents("churn") == {"open": [], "closed": [], "unsent": 0}
    state = incidents.empty()
    incidents.open_incident(state, "label_lag", "no delayed labels arrived for 30.0 h", None, "churn", now, "r1")
    incidents.open_incident(state, "silence", "no prediction logged for 7.0 h", "2026-12-01T01:00:00+00:00", "churn",
                            now + dt.timedelta(minutes=1), "r2")  # fmt: skip
    incidents.close_incident(state, "label_lag", "churn", now + dt.timedelta(minutes=2), "r3")
    incidents.save("churn", state)
    shown = monitoring_view.incidents("churn")
    (open_one,) = shown["open"]
    assert open_one["check"] == "silence" and open_one["opened_at"] == "2026-12-01T08:01:00+00:00"
    assert open_one["summary"] == "no prediction logged for 7.0 h" and open_one["closed_at"] is None
    assert [i["check"] for i in shown["closed"]] == ["label_lag"] and shown["unsent"] == 3
    assert monitoring_view.incidents("churn", closed=0)["closed"] == []


def test_monitoring_runs_carry_the_estimate_beside_the_realised_metric_and_the_alerts(spec):
    run = {
        "run_id": "r1",
        "start_time": 1764583200000,
        "metrics": {"labeled_roc_auc": 0.81, "estimated_roc_auc": 0.8, "labeled_estimated_roc_auc": 0.815,
                    "estimated_decay": 1.0, "slice_decay": 1.0, "decayed_slices": 2},
        "tags": {"retrain": "estimated_decay", "alerts": "slice_decay", "model_version": "3"},
    }  # fmt: skip
    latest = monitoring_view.monitoring_runs(spec, [run])["latest"]
    assert (latest["labeled_metric"], latest["estimated_metric"], latest["labeled_estimated_metric"]) == (
        0.81,
        0.8,
        0.815,
    )
    assert latest["estimated_decay"] and latest["slice_decay"] and latest["decayed_slices"] == 2
    assert latest["retrain"] == ["estimated_decay"] and latest["alerts"] == ["slice_decay"]
    older = monitoring_view.monitoring_runs(spec, [{**run, "metrics": {}, "tags": {"retrain": "no"}}])["latest"]
    assert older["estimated_metric"] is None and older["alerts"] == [] and not older["estimated_decay"]
