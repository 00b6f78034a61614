"""The core stages end to end against a real MLflow store (SQLite), without Airflow.

Covers the lineage tags, the safe model loading, the gate against the champion on the
same test rows, promotion history, scoring logs and the drift monitor.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.validation.suite import DataValidationError
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.operations.prediction_log import readers as log_readers
from airflow_mlops.core.registry import promotion, tracking
from airflow_mlops.core.registry.client import Registry

pytestmark = pytest.mark.component


@pytest.fixture
def registry(mlops_home):
    return Registry(f"sqlite:///{mlops_home}/mlflow.db")


def _land_and_claim(spec, kind: str, seed: int, drift: float = 0.0, day: int = 1) -> list[str]:
    lake_kind = "labeled" if kind == "training" else "scoring"
    synthetic.land_batch("churn", layout.landing_dir(spec.name, kind), dt.date(2026, 1, day), 3000, seed, drift)
    return landing.claim_new_files(
        layout.landing_dir(spec.name, kind), layout.lake_dir(spec.name, lake_kind), (".parquet",)
    )


def _train(spec, registry, run_id: str, force: bool = False) -> dict:
    lineage = {"dag_id": "churn_training", "run_id": run_id}
    dataset = data_stages.ingest_labeled(spec, run_id)
    data_stages.validate_dataset(spec, dataset, run_id)
    split = data_stages.split_dataset(spec, dataset, run_id)
    training = model_stages.train_model(spec, registry, split, dataset, lineage, skip_if_already_trained=not force)
    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    package = model_stages.package_candidate(spec, registry, training, split["test"]["uri"])
    registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage, package)
    return release.gate_candidate(spec, registry, registered, evaluation, package)


def test_nothing_landed_is_nothing_to_process_not_an_error(spec, mlops_home):
    with pytest.raises(NothingToProcessError, match="no labeled batches for pipeline 'churn'"):
        data_stages.ingest_labeled(spec, "r0")


def test_full_loop_trains_promotes_scores_and_detects_drift(spec, registry):
    _land_and_claim(spec, "training", seed=1)
    gate1 = _train(spec, registry, "run-1")
    assert gate1["promote"] and gate1["version"] == "1"
    record = release.promote_candidate(registry, gate1, by="test/run-1")
    assert record["from_version"] is None and record["to_version"] == "1"

    version = registry.client.get_model_version(spec.registered_model_name, "1")
    # Without a tracking server, artifacts go under the artifact root, never into ./mlruns.
    experiment = registry.client.get_experiment_by_name(spec.name)
    assert experiment.artifact_location.startswith(f"file://{layout.artifact_root()}/mlflow/")
    profile = registry.champion_profile(spec.registered_model_name)
    assert profile["rows"] == 3000 and profile["columns"]["plan"]["distinct"] == 3
    assert version.tags["gate"] == "passed"
    assert version.tags["airflow.run_id"] == "run-1"
    assert version.tags["spec_fingerprint"] == spec.fingerprint()
    assert len(version.tags["data_fingerprint"]) == 16
    # Packaged: an ONNX twin within 1e-4 of the sklearn scores, and a model card as the description.
    assert version.tags["onnx_uri"].endswith("/onnx/model.onnx") and float(version.tags["onnx_max_abs_diff"]) <= 1e-4
    assert version.description.startswith(f"# {spec.registered_model_name} v1") and "**Gate: passed.**" in (
        version.description
    )
    assert "ONNX: `runs:/" in version.description and "### By region" not in version.description
    artifacts = {a.path for a in registry.client.list_artifacts(version.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/roc_curve.png", "evaluation/pr_curve.png",
            "evaluation/feature_importance.png", "evaluation/slices.json"} <= artifacts  # fmt: skip

    # Retraining on identical data is nothing to do; forced, it cannot beat the champion.
    with pytest.raises(NothingToProcessError, match="v1 was already trained on this data"):
        _train(spec, registry, "run-2")
    gate_same = _train(spec, registry, "run-2", force=True)
    assert not gate_same["promote"] and gate_same["champion_version"] == "1"
    assert "required > 0.0" in "; ".join(gate_same["reasons"])
    with pytest.raises(ValueError, match="did not pass the gate"):
        release.promote_candidate(registry, gate_same, by="test/run-2")
    assert str(registry.champion(spec.registered_model_name).version) == "1"

    claimed = _land_and_claim(spec, "scoring", seed=5, drift=0.6, day=8)
    summary = operate_stages.score_batches(spec, registry, claimed, "score-1")
    log = tables.read_table(summary["prediction_log_uris"][0])
    assert len(log) == 3000 and log["request_id"].is_unique
    assert set(log["model_version"]) == {"1"}
    assert {"prediction", "score", "customer_id", *spec.data.features.all} <= set(log.columns)
    assert summary["labeled_feedback_uris"]  # the batch carried labels: it joins the history

    drift = operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "monitor-1")
    assert drift["drift_detected"]
    assert log_readers.recent_prediction_logs(spec) == summary["prediction_log_uris"]
    assert "region" not in drift["drifted_features"]
    report = storage.read_json(drift["report_uri"])
    assert report["reference"] == version.tags["reference_uri"]
    # The drifted batch moves the model's scores too; reported beside the features.
    assert report["prediction_drift"]["feature"] == "prediction" and drift["prediction_drift"]["psi"] > 0
    assert storage.read_bytes(drift["html_report_uri"]).startswith(b"<!DOCTYPE html>")


def test_promotion_refuses_when_champion_moved_during_the_run(spec, registry):
    _land_and_claim(spec, "training", seed=1)
    gate = _train(spec, registry, "run-1")
    release.promote_candidate(registry, gate, by="a")
    # Another run's candidate, compared with "no champion", arrives after run-1 promoted v1.
    with pytest.raises(RuntimeError, match="moved from None to 1"):
        promotion.promote_once(registry, gate["name"], "1", None, "gate passed", "b", run="churn_training/run-2")
    history = registry.promotion_history(spec.registered_model_name)
    assert [(h["from_version"], h["to_version"], h["by"]) for h in history] == [(None, "1", "a")]


def test_invalid_batch_fails_validation_writes_report_and_trains_nothing(spec, registry):
    synthetic_batch = synthetic.churn_batch(3000, seed=1)
    synthetic_batch.loc[:9, "plan"] = "platinum"
    tables.write_parquet(synthetic_batch, layout.join(layout.lake_dir(spec.name, "labeled"), "bad.parquet"))
    dataset = data_stages.ingest_labeled(spec, "bad-run")
    with pytest.raises(DataValidationError, match="column 'plan'") as err:
        data_stages.validate_dataset(spec, dataset, "bad-run")
    report_uri = str(err.value).split("full report: ", 1)[1].splitlines()[0]
    report = storage.read_json(report_uri)
    assert report["success"] is False
    # The offending batch left the lake for quarantine, with its own report beside it.
    (moved,) = report["quarantined"]
    assert moved.endswith("/quarantine/bad-run/bad.parquet") and "quarantined: [" in str(err.value)
    assert storage.read_json(moved + ".report.json")["failures"][0]["column"] == "plan"
    assert storage.list_files(layout.lake_dir(spec.name, "labeled")) == []
    # GX Data Docs of the failed validation are kept with the run.
    docs_index = report["data_docs"]
    assert docs_index.endswith("/validate/data_docs/index.html") and storage.exists(docs_index)
    pages = [p for p in Path(docs_index).parent.rglob("*.html") if "validations" in p.parts]
    # One page per column batch; the page of the 'plan' batch shows the value that failed.
    failing = [p for p in pages if "platinum" in p.read_text()]
    assert len(failing) == 1 and "/plan/" in failing[0].as_posix()
    assert len(pages) > 5  # the whole suite is rendered, not only the failure
    assert registry.champion(spec.registered_model_name) is None


def test_scoring_without_champion_is_an_error_naming_the_model(spec, registry):
    claimed = _land_and_claim(spec, "scoring", seed=5)
    with pytest.raises(LookupError, match="'churn_classifier' has no champion yet"):
        operate_stages.score_batches(spec, registry, claimed, "s")


def test_models_with_types_outside_the_trust_policy_are_refused():
    class Custom:
        pass

    with pytest.raises(tracking.UntrustedModelError, match="outside the trust policy"):
        tracking.trusted_types_for({"x": Custom()})


def test_monitoring_ignores_predictions_of_a_former_champion(spec, registry):
    _land_and_claim(spec, "training", seed=1)
    release.promote_candidate(registry, _train(spec, registry, "run-1"), by="t")
    claimed = _land_and_claim(spec, "scoring", seed=5, drift=0.6, day=8)
    summary = operate_stages.score_batches(spec, registry, claimed, "score-1")
    _land_and_claim(spec, "training", seed=7, drift=0.6, day=9)
    gate = _train(spec, registry, "run-2")
    assert gate["promote"], gate["reasons"]
    release.promote_candidate(registry, gate, by="t")
    with pytest.raises(NothingToProcessError, match="no predictions by the current champion"):
        operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "monitor-2")


def test_scored_batch_with_invalid_labels_does_not_join_the_history(spec, registry):
    _land_and_claim(spec, "training", seed=1)
    release.promote_candidate(registry, _train(spec, registry, "run-1"), by="t")
    batch = synthetic.churn_batch(3000, seed=5)
    batch.loc[:5, "churned"] = 2
    uri = tables.write_parquet(batch, layout.join(layout.lake_dir(spec.name, "scoring"), "odd.parquet"))
    summary = operate_stages.score_batches(spec, registry, [uri], "score-odd")
    assert summary["rows"] == 3000 and summary["labeled_feedback_uris"] == []


def test_champion_lookup_errors_other_than_not_found_are_raised(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(Exception) as err:
        Registry("http://127.0.0.1:9").champion("any_model")  # nothing listens on port 9
    assert not isinstance(err.value, AssertionError)


def test_trials_are_child_runs_and_the_best_on_validation_is_refit(spec, registry, tmp_path):
    _land_and_claim(spec, "training", seed=5)
    run_id = "run-trials"
    lineage = {"dag_id": "churn_training", "run_id": run_id}
    dataset = data_stages.ingest_labeled(spec, run_id)
    split = data_stages.split_dataset(spec, dataset, run_id)
    trials = model_stages.plan_trials(spec, registry, dataset, split, lineage)
    assert [t["label"] for t in trials] == [
        "hist_gradient_boosting[learning_rate=0.05]",
        "hist_gradient_boosting[learning_rate=0.1]",
        "logistic_regression",
    ]
    results = [model_stages.run_trial(spec, registry, trial, split, lineage) for trial in reversed(trials)]
    training = model_stages.select_and_refit(spec, registry, results, dataset, split, lineage)

    mlflow_client = registry.client
    parent = trials[0]["parent_run_id"]
    children = mlflow_client.search_runs(
        [training["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert sorted(c.info.run_name for c in children) == sorted(t["label"] for t in trials)
    assert all(c.info.status == "FINISHED" and "val_roc_auc" in c.data.metrics for c in children)
    best = max(children, key=lambda c: (c.data.metrics["val_roc_auc"], -int(c.data.tags["trial"])))
    assert training["run_id"] == parent and training["winner"]["run_id"] == best.info.run_id
    parent_run = mlflow_client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags["best_trial_run_id"] == best.info.run_id
    assert int(parent_run.data.params["refit_rows"]) == split["train"]["rows"] + split["validation"]["rows"]
    leaderboard = json.loads(Path(registry.download(f"runs:/{parent}/tuning/trials.json", str(tmp_path))).read_text())
    assert leaderboard["selection_metric"] == "roc_auc" and len(leaderboard["trials"]) == 3


def test_onnx_parity_failure_blocks_promotion_and_rollback_restores_the_previous_champion(spec, registry):
    from airflow_mlops.spec import EvaluationSpec

    sliced = spec.model_copy(update={"evaluation": EvaluationSpec(slices=["region"], plots=False)})
    _land_and_claim(sliced, "training", seed=1)
    first = _train(sliced, registry, "run-1")
    release.promote_candidate(registry, first, by="test/run-1")
    card = registry.client.get_model_version(sliced.registered_model_name, "1").description
    assert "### By region" in card and "| north |" in card

    _land_and_claim(sliced, "training", seed=2, day=2)
    lineage = {"dag_id": "churn_training", "run_id": "run-2"}
    dataset = data_stages.ingest_labeled(sliced, "run-2")
    split = data_stages.split_dataset(sliced, dataset, "run-2")
    training = model_stages.train_model(sliced, registry, split, dataset, lineage)
    evaluation = model_stages.evaluate_candidate(sliced, registry, training, split["test"]["uri"])
    evaluation["champion"] = None  # judge the candidate alone: only packaging may stop it
    broken = {"onnx_uri": "runs:/x/onnx/model.onnx", "error": None, "policy": "required",
              "parity": {"rows": 10, "max_abs_diff": 0.3, "rows_over_tolerance": 2, "tolerance": 1e-4,
                         "labels_agree": 0.8, "passed": False}}  # fmt: skip
    registered = release.register_candidate(sliced, registry, training, evaluation, dataset, split, lineage)
    gate = release.gate_candidate(sliced, registry, registered, evaluation, broken)
    assert not gate["promote"] and gate["reasons"][0].startswith("ONNX parity failed: max |onnx - sklearn| = 0.3")
    version = registry.client.get_model_version(sliced.registered_model_name, registered["version"])
    assert version.tags["gate"] == "failed" and "**Gate: failed.**" in version.description

    # An operator promotes v2 by hand, then rolls back: v1 is champion again, and the history says so.
    promotion.promote(registry, sliced.registered_model_name, "2", reason="manual", by="someone")
    record = promotion.rollback(registry, sliced.registered_model_name, by="test", reason="bad canary")
    assert (record["from_version"], record["to_version"]) == ("2", "1")
    assert str(registry.champion(sliced.registered_model_name).version) == "1"
    history = registry.promotion_history(sliced.registered_model_name)
    assert [(h["from_version"], h["to_version"]) for h in history] == [(None, "1"), ("1", "2"), ("2", "1")]
    assert history[-1]["reason"] == "rollback: bad canary"
    # Undoing that rollback would bring back v2, whose gate failed: refused unless forced.
    with pytest.raises(promotion.RollbackError, match="v2 champion again: it failed its promotion gate"):
        promotion.rollback(registry, sliced.registered_model_name, by="test", reason="again")
    with pytest.raises(promotion.RollbackError, match="has no version 9"):
        promotion.rollback(registry, sliced.registered_model_name, by="test", reason="x", to_version="9")


def test_rollback_and_history_from_the_command_line(spec, registry, capsys, tmp_path):
    from airflow_mlops.cli import main
    from tests.conftest import EXAMPLE_SPEC

    name = spec.registered_model_name
    _land_and_claim(spec, "training", seed=1)
    release.promote_candidate(registry, _train(spec, registry, "run-1"), by="test/run-1")
    assert main(["rollback", str(EXAMPLE_SPEC), "--tracking-uri", registry.tracking_uri]) == 1
    assert "no earlier champion recorded" in capsys.readouterr().err

    second = _train(spec, registry, "run-2", force=True)
    promotion.promote(registry, name, second["version"], reason="by hand", by="someone")
    assert main(["rollback", str(EXAMPLE_SPEC), "--tracking-uri", registry.tracking_uri, "--reason", "alerts"]) == 0
    assert f"champion of {name}: v2 -> v1 (rollback: alerts" in capsys.readouterr().out
    assert main(["history", str(EXAMPLE_SPEC), "--tracking-uri", registry.tracking_uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"champion of {name}: v1" and len(lines) == 4 and "vNone -> v1" in lines[1]


def test_same_data_spec_and_seed_pick_the_same_winner_and_predict_identically(spec, registry):
    from airflow_mlops.core.model.training import feature_frame

    _land_and_claim(spec, "training", seed=3)
    dataset = data_stages.ingest_labeled(spec, "r1")
    split = data_stages.split_dataset(spec, dataset, "r1")
    runs = [model_stages.train_model(spec, registry, split, dataset, {"run_id": f"repeat-{i}"}, False) for i in (1, 2)]
    assert runs[0]["run_id"] != runs[1]["run_id"]
    assert runs[0]["winner"]["label"] == runs[1]["winner"]["label"]
    assert runs[0]["winner"]["metrics"] == runs[1]["winner"]["metrics"]
    features = feature_frame(tables.read_table(split["test"]["uri"]), spec)
    first, second = (tracking.load_model(registry, run["model_uri"]).predict_proba(features) for run in runs)
    assert (first == second).all()


def test_a_trial_already_run_on_the_same_split_and_code_is_not_fitted_again(spec, registry, monkeypatch):
    _land_and_claim(spec, "training", seed=4)
    lineage = {"dag_id": "churn_training", "run_id": "c1"}
    dataset = data_stages.ingest_labeled(spec, "c1")
    split = data_stages.split_dataset(spec, dataset, "c1")
    first = [
        model_stages.run_trial(spec, registry, t, split, lineage)
        for t in model_stages.plan_trials(spec, registry, dataset, split, lineage)
    ]
    assert all(r["cached_from"] is None and r["fit_seconds"] > 0 for r in first)

    import airflow_mlops.core.model.training as training

    def no_fitting(*args, **kwargs):
        raise AssertionError("a cached trial was fitted again")

    monkeypatch.setattr(training, "fit", no_fitting)
    again = [
        model_stages.run_trial(spec, registry, t, split, lineage)
        for t in model_stages.plan_trials(spec, registry, dataset, split, {"run_id": "c2"})
    ]
    assert [r["cached_from"] for r in again] == [r["run_id"] for r in first]
    assert [r["metrics"] for r in again] == [r["metrics"] for r in first]

    # Another code version (or split, or spec section) is another key: the trial runs again.
    monkeypatch.setattr(model_stages, "__version__", "9.9.9")
    trial = model_stages.plan_trials(spec, registry, dataset, split, {"run_id": "c3"})[0]
    with pytest.raises(AssertionError, match="fitted again"):
        model_stages.run_trial(spec, registry, trial, split, lineage)
    monkeypatch.undo()
    uncached = spec.model_copy(update={"model": spec.model.model_copy(update={"cache": False})})
    assert model_stages.trial_cache_key(uncached, trial, split) == model_stages.trial_cache_key(spec, trial, split)
    fresh = model_stages.run_trial(uncached, registry, trial, split, lineage)  # model.cache: false fits
    assert fresh["cached_from"] is None


def test_regression_end_to_end_with_residuals_onnx_and_a_lower_is_better_gate(spec, registry):
    from airflow_mlops.spec import ModelSpec, PromotionSpec

    regression = spec.model_copy(
        update={
            "model": ModelSpec(task="regression", registered_name="charges_regressor",
                               candidates=[{"estimator": "ridge", "search": {"space": {"alpha": [0.1, 10.0]}}},
                                           {"estimator": "hist_gradient_boosting_regressor",
                                            "params": {"max_iter": 50}}]),
            "promotion": PromotionSpec(metric="rmse", thresholds={"r2": 0.3}),
            # The label is a number now: drop the 0/1 value-set expectation of the churn suite.
            "validation": spec.validation.model_copy(update={"expectations": [
                e for e in spec.validation.expectations if e.kwargs.get("column") != "churned"]}),
        }
    )  # fmt: skip
    frame = synthetic.churn_batch(3000, seed=6)
    frame["churned"] = 3 * frame["tenure_months"].fillna(20) + frame["support_calls"].fillna(1) * 10.0
    tables.write_parquet(frame, layout.join(layout.lake_dir(spec.name, "labeled"), "reg.parquet"))
    gate = _train(regression, registry, "reg-1")
    assert gate["promote"] and gate["metric"] == "rmse", gate["reasons"]
    version = registry.client.get_model_version("charges_regressor", gate["version"])
    assert float(version.tags["onnx_max_abs_diff"]) <= 1e-4 and "| rmse |" in version.description
    artifacts = {a.path for a in registry.client.list_artifacts(version.run_id, "evaluation")}
    assert "evaluation/residuals.png" in artifacts and "evaluation/confusion_matrix.png" not in artifacts


def test_a_champion_that_cannot_be_evaluated_fails_the_gate_with_the_reason(spec, registry):
    from airflow_mlops.spec import FeaturesSpec

    _land_and_claim(spec, "training", seed=1)
    release.promote_candidate(registry, _train(spec, registry, "run-1"), by="test")
    fewer = FeaturesSpec(numeric=["tenure_months", "monthly_charges"], categorical=["plan"])
    kept = [e for e in spec.validation.expectations if e.kwargs["column"] in {"customer_id", "churned", *fewer.all}]
    narrow = spec.model_copy(
        update={
            "data": spec.data.model_copy(update={"features": fewer}),
            "validation": spec.validation.model_copy(update={"expectations": kept}),
        }
    )
    gate = _train(narrow, registry, "run-2")
    assert not gate["promote"] and gate["champion_version"] == "1"
    assert gate["reasons"][0].startswith("current champion v1 could not be evaluated on this test split")
    assert str(registry.champion(spec.registered_model_name).version) == "1"


def test_calendar_monitoring_lists_the_partitions_of_its_time_window(spec, mlops_home):
    from airflow_mlops.spec import MonitoringSpec

    now = dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)
    written = []
    for day, stamp in [(dt.date(2026, 3, 7), "20260307T1200"), (dt.date(2026, 3, 9), "20260309T0100"),
                       (dt.date(2026, 3, 9), "20260309T2300"), (dt.date(2026, 3, 10), "20260310T0500")]:  # fmt: skip
        uri = layout.join(layout.prediction_log_partition(spec.name, day), f"part-{stamp}-serving-a.parquet")
        written.append(storage.write_bytes(b"x", uri))
    window = spec.model_copy(update={"monitoring": MonitoringSpec()})  # lookback_hours: 24
    assert log_readers.lookback_start(window, now) == now - dt.timedelta(hours=24)
    assert log_readers.recent_prediction_logs(window, now) == written[1:]
    wide = spec.model_copy(update={"monitoring": MonitoringSpec(lookback_hours=24 * 4)})
    assert log_readers.recent_prediction_logs(wide, now) == written
    # The newest files instead, when asked for.
    newest = spec.model_copy(update={"monitoring": MonitoringSpec(lookback_batches=1)})
    assert log_readers.lookback_start(newest, now) is None
    assert log_readers.recent_prediction_logs(newest, now) == written[-1:]
    assert spec.monitoring.lookback_hours == 24 and spec.monitoring.lookback_batches is None  # the example spec
    with pytest.raises(ValueError, match="not both"):
        MonitoringSpec(lookback_hours=6, lookback_batches=2)
