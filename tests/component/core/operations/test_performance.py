"""Performance decay: delayed labels joined to logged predictions, judged against the champion's test metric."""

from __future__ import annotations

import datetime as dt
import json
import os
import types

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.operations import performance as perf
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.operations.prediction_log import labels as log_labels
from airflow_mlops.core.operations.prediction_log import readers as log_readers
from airflow_mlops.core.registry import tracking
from airflow_mlops.spec import MonitoringSpec
from tests.component.core.operations.test_scoring import trained_champion, use_champion

pytestmark = pytest.mark.component

ROWS = 3000


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory):
    return trained_champion(tmp_path_factory)


@pytest.fixture
def registry(champion_home, monkeypatch, tmp_path):
    return use_champion(champion_home, monkeypatch, tmp_path)


def _score(spec, registry, name: str = "b.parquet", run_id: str = "score-1") -> tuple[pd.DataFrame, dict]:
    """Score an undrifted batch without its label; return the truth (id, label) and the summary."""
    batch = synthetic.churn_batch(ROWS, seed=5)
    truth = batch[[spec.data.id_column, spec.data.label]]
    uri = tables.write_parquet(
        batch.drop(columns=[spec.data.label]), layout.join(layout.lake_dir(spec.name, "scoring"), name)
    )
    return truth, operate_stages.score_batches(spec, registry, [uri], run_id)


def _labels_by_request(spec, summary: dict, truth: pd.DataFrame, flip: bool = False, rows: int | None = None):
    log = tables.read_table(summary["prediction_log_uris"][0])
    labels = log[["request_id", "row", spec.data.id_column]].merge(truth, on=spec.data.id_column)
    if flip:
        labels[spec.data.label] = 1 - labels[spec.data.label]
    labels = labels[["request_id", "row", spec.data.label]].head(rows)
    return tables.write_parquet(labels, layout.join(layout.labels_dir(spec.name), "labels-1.parquet"))


def _monitor(spec, registry, summary, run_id: str = "monitor-1") -> dict:
    return operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], run_id)


def test_no_labels_means_no_performance_check_and_no_change(spec, registry):
    _, summary = _score(spec, registry)
    result = _monitor(spec, registry, summary)
    assert result["performance"] is None and not result["performance_decay"]
    assert result["retrain"] is bool(result["drift_detected"])
    assert "No delayed labels" in storage.read_bytes(result["html_report_uri"]).decode()


def test_labels_joined_by_request_id_that_agree_show_no_decay(spec, registry):
    truth, summary = _score(spec, registry)
    _labels_by_request(spec, summary, truth)
    result = _monitor(spec, registry, summary)
    performance = result["performance"]
    assert performance["labeled_rows"] == ROWS and performance["metric"] == "roc_auc"
    champion = registry.champion(spec.registered_model_name)
    assert performance["test_value"] == pytest.approx(float(champion.tags["test_roc_auc"]))
    # Fresh data from the training distribution: about the test value.
    assert abs(performance["value"] - performance["test_value"]) < 0.05
    assert not performance["decayed"] and not result["performance_decay"]
    assert {"accuracy", "f1", "roc_auc", "log_loss"} <= set(performance["metrics"])
    assert not result["drift_detected"] and not result["retrain"] and result["retrain_reasons"] == []
    report = storage.read_json(result["report_uri"])
    assert report["performance"]["labeled_rows"] == ROWS
    page = storage.read_bytes(result["html_report_uri"]).decode()
    assert "<h2>Performance</h2>" in page and "no decay" in page
    run = registry.client.get_run(result["mlflow_run_id"])
    assert run.data.metrics["labeled_rows"] == ROWS and run.data.metrics["performance_decay"] == 0.0
    assert run.data.metrics["labeled_roc_auc"] == pytest.approx(performance["value"])


def test_flipped_labels_are_performance_decay_and_request_retraining(spec, registry):
    truth, summary = _score(spec, registry)
    _labels_by_request(spec, summary, truth, flip=True)
    result = _monitor(spec, registry, summary)
    performance = result["performance"]
    assert performance["decayed"] and performance["value"] < 0.5 < performance["test_value"]
    assert performance["drop"] > spec.monitoring.max_metric_drop
    assert result["performance_decay"] and result["retrain"]
    assert result["retrain_reasons"] == ["performance_decay"]  # the inputs did not drift
    assert "PERFORMANCE DECAY" in storage.read_bytes(result["html_report_uri"]).decode()
    run = registry.client.get_run(result["mlflow_run_id"])
    assert run.data.metrics["performance_decay"] == 1.0 and run.data.tags["retrain"] == "performance_decay"


def test_too_few_labeled_rows_take_no_decision(spec, registry):
    truth, summary = _score(spec, registry)
    _labels_by_request(spec, summary, truth, flip=True, rows=150)
    result = _monitor(spec, registry, summary)
    performance = result["performance"]
    assert performance["labeled_rows"] == 150 < spec.monitoring.min_labeled_rows
    assert not performance["decayed"] and "no decision" in performance["decision"]
    assert not result["retrain"]
    # A smaller minimum lets the same 150 labels decide.
    lower = spec.model_copy(update={"monitoring": MonitoringSpec(min_labeled_rows=100)})
    assert _monitor(lower, registry, summary, "monitor-2")["performance"]["decayed"]


def test_labels_by_id_join_the_latest_prediction_of_each_id(spec, registry):
    truth, _ = _score(spec, registry, "first.parquet", "score-1")
    _, second = _score(spec, registry, "second.parquet", "score-2")  # the same ids, scored again
    labels_dir = layout.labels_dir(spec.name)
    os.makedirs(labels_dir, exist_ok=True)
    truth.to_csv(os.path.join(labels_dir, "by-id.csv"), index=False)  # CSV, keyed by the id column
    joined, unusable = log_labels.labeled_predictions(spec, "1")
    assert unusable == [] and len(joined) == ROWS and joined["id"].is_unique
    latest = set(tables.read_table(second["prediction_log_uris"][0])["request_id"])
    assert set(joined["request_id"]) == latest
    result = _monitor(spec, registry, second)
    assert result["performance"]["labeled_rows"] == ROWS and not result["performance"]["decayed"]


def test_request_labels_win_over_id_labels_and_a_bad_label_file_is_skipped(spec, registry):
    truth, summary = _score(spec, registry)
    _labels_by_request(spec, summary, truth, flip=True)
    truth.to_csv(os.path.join(layout.labels_dir(spec.name), "by-id.csv"), index=False)
    bad = pd.DataFrame({"something": [1, 2]})
    tables.write_parquet(bad, layout.join(layout.labels_dir(spec.name), "bad.parquet"))
    joined, unusable = log_labels.labeled_predictions(spec, "1")
    assert len(joined) == ROWS and unusable == [layout.join(layout.labels_dir(spec.name), "bad.parquet")]
    flipped = joined.merge(truth.rename(columns={spec.data.id_column: "id"}), on="id")
    assert (flipped["label"] != flipped[spec.data.label]).all()  # the request-keyed (flipped) labels
    # Labels for another version's predictions join nothing.
    assert len(log_labels.labeled_predictions(spec, "2")[0]) == 0


def _window(spec, **monitoring) -> object:
    """The spec with a time-window monitoring (the example spec reads the newest file instead)."""
    return spec.model_copy(update={"monitoring": MonitoringSpec(**monitoring)})


def _other_version_log(spec, summary: dict, version: str = "99") -> str:
    """A newer log file (a serving worker's, say) holding only another version's predictions."""
    log = tables.read_table(summary["prediction_log_uris"][0]).head(50).assign(model_version=version)
    folder = summary["prediction_log_uris"][0].rsplit("/", 1)[0]
    return tables.write_parquet(log.assign(source_uri="serving"), f"{folder}/part-99991231T000000-serving-x.parquet")


def test_labels_that_are_not_values_are_not_counted_as_labeled_rows(spec, registry):
    truth, summary = _score(spec, registry)
    log = tables.read_table(summary["prediction_log_uris"][0])
    labels = log[["request_id", "row", spec.data.id_column]].merge(truth, on=spec.data.id_column).head(250)
    text = labels[spec.data.label].astype(str)
    text.iloc[150:] = "unknown"  # 100 labels that are no class: dropped before the metrics
    labels = labels[["request_id", "row"]].assign(**{spec.data.label: text})
    tables.write_parquet(labels, layout.join(layout.labels_dir(spec.name), "labels-1.parquet"))
    performance = perf.assess_performance(
        spec, registry.champion(spec.registered_model_name), _champion_model(registry, spec)
    )
    assert performance["labeled_rows"] == 150 < spec.monitoring.min_labeled_rows
    assert "no decision: 150 labeled prediction(s)" in performance["decision"] and not performance["decayed"]


def _champion_model(registry, spec):
    return tracking.load_model(registry, f"models:/{spec.registered_model_name}/1")


def test_performance_reads_only_partitions_since_the_champion_was_promoted(spec, registry):
    truth, summary = _score(spec, registry)
    _labels_by_request(spec, summary, truth)
    champion = registry.champion(spec.registered_model_name)
    promoted = perf.promotion_day(champion)
    assert promoted == dt.datetime.fromisoformat(json.loads(champion.tags["promotion"])["at"]).date()
    # An older partition, before the promotion: never listed nor read (this one is not even Parquet).
    old = layout.prediction_log_partition(spec.name, promoted - dt.timedelta(days=30))
    os.makedirs(old)
    with open(os.path.join(old, "part-00000000T000000-x.parquet"), "wb") as handle:
        handle.write(b"not parquet")
    joined, _ = log_labels.labeled_predictions(spec, "1", promoted)
    assert len(joined) == ROWS
    assert log_readers.prediction_log_files(spec.name, promoted) == summary["prediction_log_uris"]
    result = _monitor(spec, registry, summary)
    assert result["performance"]["labeled_rows"] == ROWS
    # Without a promotion tag, the version's registration day bounds the partitions read.
    registered = types.SimpleNamespace(version="1", tags={}, creation_timestamp=champion.creation_timestamp)
    assert (
        perf.promotion_day(registered) == dt.datetime.fromtimestamp(champion.creation_timestamp / 1000, dt.UTC).date()
    )
    assert perf.promotion_day(types.SimpleNamespace(tags={}, creation_timestamp=None)) is None


def test_only_the_champions_rows_and_columns_are_read_from_the_logs(spec, registry, monkeypatch):
    _, summary = _score(spec, registry)
    other = _other_version_log(spec, summary)
    calls = []
    real = pq.read_table

    def spy(path, *args, **kwargs):
        calls.append(kwargs)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    predictions = log_readers.champion_predictions(spec, "1", dt.datetime.now(dt.UTC).date())
    assert len(predictions) == ROWS and len(calls) == 2
    assert all(call["filters"] is not None and "plan" not in call["columns"] for call in calls)
    assert log_readers.champion_predictions(spec, "99", None).shape[0] == 50
    assert other in log_readers.prediction_log_files(spec.name, None)


def test_a_calendar_run_reads_the_time_window_not_only_the_newest_file(spec, registry):
    _, summary = _score(spec, registry)
    _other_version_log(spec, summary)  # the newest file holds no prediction of the champion
    with pytest.raises(NothingToProcessError, match="no predictions by the current champion"):
        operate_stages.monitor_drift(_window(spec, lookback_batches=1), registry, [], "monitor-1")
    result = operate_stages.monitor_drift(_window(spec), registry, [], "monitor-2")
    assert result["drift_measured"] and result["current_rows"] == ROWS and not result["drift_detected"]
    report = storage.read_json(result["report_uri"])
    assert report["current"] == summary["prediction_log_uris"] and report["lookback_start"]
    # At most max_rows, the newest.
    capped = operate_stages.monitor_drift(_window(spec, max_rows=1000), registry, [], "monitor-3")
    assert capped["current_rows"] == 1000


def test_predictions_older_than_the_window_are_left_out(spec, registry):
    _, summary = _score(spec, registry)
    log = tables.read_table(summary["prediction_log_uris"][0])
    earlier = log["logged_at"].iloc[0] - pd.Timedelta(hours=30)
    folder = layout.prediction_log_partition(spec.name, earlier.date())
    tables.write_parquet(log.assign(logged_at=earlier), f"{folder}/part-00000000T000000-old.parquet")
    assert operate_stages.monitor_drift(_window(spec), registry, [], "m-1")["current_rows"] == ROWS
    wide = operate_stages.monitor_drift(_window(spec, lookback_hours=48), registry, [], "m-2")
    assert wide["current_rows"] == 2 * ROWS


def test_without_champion_rows_to_compare_the_labels_are_still_judged(spec, registry):
    truth, summary = _score(spec, registry)
    _labels_by_request(spec, summary, truth, flip=True)
    other = _other_version_log(spec, summary)
    result = operate_stages.monitor_drift(spec, registry, [other], "monitor-1")  # the event named that file
    assert not result["drift_measured"] and result["current_rows"] == 0 and not result["drift_detected"]
    assert result["performance_decay"] and result["retrain_reasons"] == ["performance_decay"]
    report = storage.read_json(result["report_uri"])
    assert "no predictions by the current champion" in report["no_drift_data"]
    assert "not measured" in storage.read_bytes(result["html_report_uri"]).decode()
