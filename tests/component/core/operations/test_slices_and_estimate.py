"""monitor_drift with delayed labels, evaluation slices and the estimate without labels, on a real
MLflow store: the calibration record of the evaluation, per-slice decay, the estimate beside the
realised metric, and what requests retraining and what is only an alert."""

from __future__ import annotations

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.model import release
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.operations.estimation import champion_calibration
from airflow_mlops.core.registry.client import Registry, metric_name
from airflow_mlops.spec import EvaluationSpec, ModelSpec, MonitoringSpec, load_spec
from tests.component.core.operations.test_scoring import use_champion
from tests.component.core.test_stages import _land_and_claim, _train
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

ROWS = 3000


def _watched(**monitoring) -> object:
    """The example spec with slices on region and plan, one quick candidate, and ``monitoring``."""
    spec = load_spec(EXAMPLE_SPEC)
    model = ModelSpec(estimator="logistic_regression", params={"max_iter": 500}, registered_name="churn_classifier")
    return spec.model_copy(
        update={
            "evaluation": EvaluationSpec(slices=["region", "plan"], plots=False),
            "model": model,
            "monitoring": MonitoringSpec(**monitoring),
        }
    )


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
            patch.delenv(var, raising=False)
        patch.setenv("AIRFLOW_MLOPS_HOME", str(home))
        spec, registry = _watched(), Registry(f"sqlite:///{home}/mlflow.db")
        _land_and_claim(spec, "training", seed=1)
        release.promote_candidate(registry, _train(spec, registry, "run-1"), by="test")
    return str(home), registry


@pytest.fixture
def registry(champion_home, monkeypatch, tmp_path):
    return use_champion(champion_home, monkeypatch, tmp_path)


def _score_and_label(spec, registry, flip_region: str | None = None) -> dict:
    """Score an undrifted batch, then deliver its labels by request id (``flip_region``'s flipped)."""
    batch = synthetic.churn_batch(ROWS, seed=5)
    uri = tables.write_parquet(
        batch.drop(columns=[spec.data.label]), layout.join(layout.lake_dir(spec.name, "scoring"), "b.parquet")
    )
    summary = operate_stages.score_batches(spec, registry, [uri], "score-1")
    log = tables.read_table(summary["prediction_log_uris"][0])
    labels = log[["request_id", "row", spec.data.id_column]].merge(batch, on=spec.data.id_column)
    if flip_region is not None:
        flipped = labels["region"] == flip_region
        labels.loc[flipped, spec.data.label] = 1 - labels.loc[flipped, spec.data.label]
    tables.write_parquet(
        labels[["request_id", "row", spec.data.label]], layout.join(layout.labels_dir(spec.name), "labels-1.parquet")
    )
    return summary


def test_the_evaluation_records_calibration_and_monitoring_estimates_beside_the_realised_metric(registry):
    spec = _watched()
    summary = _score_and_label(spec, registry)
    champion = registry.champion(spec.registered_model_name)
    record = champion_calibration(registry, champion)
    assert record["classes"] == ["0", "1"] and 0 <= record["ece"] < spec.monitoring.max_calibration_error
    assert "calibration_ece" in registry.client.get_run(champion.run_id).data.metrics

    result = operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "monitor-1")
    estimate, performance = result["estimate"], result["performance"]
    assert estimate["available"] and estimate["rows"] == ROWS and estimate["calibration"].startswith("raw scores")
    # The same rows, labeled: estimated and realised agree (3,000 rows of the training distribution).
    for name in ("accuracy", "f1", "roc_auc"):
        assert abs(estimate["labeled_estimate"][name] - performance["metrics"][name]) <= 0.03, name
    assert not estimate["decayed"] and not result["slice_decay"] and result["alerts"] == []
    assert result["retrain_reasons"] == [] and not result["retrain"]

    report = storage.read_json(result["report_uri"])
    assert {row["column"] for row in report["slices"]["slices"]} == {"region", "plan"}
    assert report["slices"]["judged"] >= 4 and report["estimate"]["value"] == pytest.approx(estimate["value"])
    page = storage.read_bytes(result["html_report_uri"]).decode()
    assert "<h2>Slices</h2>" in page and "no slice decay" in page and "no estimated decay" in page
    run = registry.client.get_run(result["mlflow_run_id"])
    assert run.data.metrics["estimated_roc_auc"] == pytest.approx(estimate["value"])
    assert run.data.metrics["labeled_estimated_accuracy"] == pytest.approx(estimate["labeled_estimate"]["accuracy"])
    assert metric_name("slice.region.north.labeled_roc_auc") in run.data.metrics
    assert run.data.metrics["slice_decay"] == 0.0 and run.data.tags["alerts"] == "no"


def test_a_slice_whose_labels_flipped_is_an_alert_or_with_the_flag_a_retraining_reason(registry):
    # The overall metric is allowed to fall a lot here: only the slice's own check may fire.
    spec = _watched(max_metric_drop=0.5)
    summary = _score_and_label(spec, registry, flip_region="north")
    result = operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "monitor-1")
    # North's own slice decays, no other region does (each plan holds north rows: those fall too).
    assert result["slice_decay"] and [s for s in result["decayed_slices"] if s.startswith("region=")] == [
        "region=north"
    ]
    assert result["alerts"] == ["slice_decay"] and result["retrain_reasons"] == [] and not result["retrain"]
    report = storage.read_json(result["report_uri"])
    north = next(row for row in report["slices"]["slices"] if row["value"] == "north")
    assert north["drop"] > 0.1 and north["rows"] >= spec.monitoring.min_slice_rows
    assert "SLICE DECAY" in storage.read_bytes(result["html_report_uri"]).decode()
    run = registry.client.get_run(result["mlflow_run_id"])
    assert run.data.tags["alerts"] == "slice_decay" and run.data.tags["retrain"] == "no"
    assert run.data.metrics[metric_name("slice.region.north.drop")] == pytest.approx(north["drop"])

    retrain = _watched(max_metric_drop=0.5, retrain_on_slice_decay=True)
    again = operate_stages.monitor_drift(retrain, registry, summary["prediction_log_uris"], "monitor-2")
    assert again["retrain_reasons"] == ["slice_decay"] and again["retrain"] and again["alerts"] == []
    # With a minimum above the slice's rows, it is not judged at all.
    strict = _watched(max_metric_drop=0.5, min_slice_rows=ROWS)
    unjudged = operate_stages.monitor_drift(strict, registry, summary["prediction_log_uris"], "monitor-3")
    assert not unjudged["slice_decay"] and unjudged["alerts"] == []


def test_an_estimate_worse_than_the_test_value_is_estimated_decay(registry):
    spec = _watched(use_estimate=True)
    summary = _score_and_label(spec, registry)
    name = spec.registered_model_name
    champion = registry.champion(name)
    real = champion.tags["test_roc_auc"]
    registry.client.set_model_version_tag(name, champion.version, "test_roc_auc", "0.999")  # an unreachable bar
    try:
        result = operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "monitor-1")
    finally:
        registry.client.set_model_version_tag(name, champion.version, "test_roc_auc", real)
    estimate = result["estimate"]
    assert estimate["decayed"] and estimate["drop"] > spec.monitoring.estimated_metric_drop
    assert "estimated_decay" in result["retrain_reasons"] and result["retrain"]
    run = registry.client.get_run(result["mlflow_run_id"])
    assert run.data.metrics["estimated_decay"] == 1.0 and "estimated_decay" in run.data.tags["retrain"]


def test_scores_above_the_calibration_bound_give_no_estimate_and_say_why(registry):
    spec = _watched(max_calibration_error=1e-6)
    summary = _score_and_label(spec, registry)
    result = operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "monitor-1")
    estimate = result["estimate"]
    assert not estimate["available"] and estimate["decision"].startswith("no estimate: scores not calibrated")
    assert not estimate["decayed"] and estimate["metrics"] == {}
    assert "Estimated performance (no labels)" in storage.read_bytes(result["html_report_uri"]).decode()
    assert storage.read_json(result["report_uri"])["estimate"]["available"] is False
