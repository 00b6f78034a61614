"""Changing a spec: renamed columns are read under their new name (``data.renamed``), batches
from before a feature was added are left out of the window (counted, not quarantined), and the
gate still evaluates the champion on the new test split."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.sources import IngestError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.spec import SpecError, parse_spec

pytestmark = pytest.mark.component

BASE = """
name: changes
data:
  id_column: customer_id
  label: churned
  dtypes: {{churned: int}}
  features:
    numeric: [{numeric}]
    categorical: [{categorical}]
{extra}
validation: {{min_rows: 100}}
model: {{estimator: logistic_regression, params: {{max_iter: 500}}}}
packaging: {{onnx: "off"}}
evaluation: {{plots: false}}
"""
NUMERIC = "tenure_months, monthly_charges, support_calls"
CATEGORICAL = "plan, region"


def _spec(numeric: str = NUMERIC, categorical: str = CATEGORICAL, extra: str = ""):
    return parse_spec(BASE.format(numeric=numeric, categorical=categorical, extra=extra))


def _lake(spec) -> Path:
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True, exist_ok=True)
    return lake


def _batch(seed: int, rows: int = 1200) -> pd.DataFrame:
    return synthetic.churn_batch(rows, seed=seed)


def _quarantined(spec) -> list[str]:
    return storage.list_files_recursive(f"{layout.artifact_root()}/{spec.name}/quarantine")


def test_renamed_columns_of_older_batches_are_read_under_the_new_name(mlops_home):
    spec = _spec(categorical="plan_tier, region", extra="  renamed: {plan: plan_tier}")
    lake = _lake(spec)
    _batch(1).to_parquet(lake / "1-old.parquet", index=False)  # still says "plan"
    _batch(2).rename(columns={"plan": "plan_tier"}).to_parquet(lake / "2-new.parquet", index=False)
    dataset = data_stages.ingest_labeled(spec, "r1")
    assert dataset["rows"] == 2400 and dataset["batches_skipped_schema"] == 0
    frame = pd.read_parquet(dataset["uri"])
    assert "plan" not in frame.columns and frame["plan_tier"].notna().all()
    assert set(frame["plan_tier"]) == {"basic", "standard", "premium"}
    data_stages.validate_dataset(spec, dataset, "r1")
    assert not _quarantined(spec)


def test_batches_from_before_an_added_feature_are_left_out_counted_and_kept(mlops_home, caplog):
    spec = _spec(categorical="plan, region, payment_method")
    lake = _lake(spec)
    for number in (1, 2):  # landed when the spec had no payment_method
        _batch(number).drop(columns=["payment_method"]).to_parquet(lake / f"{number}-old.parquet", index=False)
    _batch(3).to_parquet(lake / "3-new.parquet", index=False)
    with caplog.at_level(logging.WARNING, logger="airflow_mlops.core.data.ingest"):
        dataset = data_stages.ingest_labeled(spec, "r1")
    assert dataset["rows"] == 1200 and dataset["batches_skipped_schema"] == 2
    assert dataset["sources"] == [str(lake / "3-new.parquet")]
    assert dataset["skipped_schema"] == {str(lake / f"{n}-old.parquet"): ["payment_method"] for n in (1, 2)}
    assert sum("left out of the window" in r.getMessage() for r in caplog.records) == 2
    data_stages.validate_dataset(spec, dataset, "r1")
    assert not _quarantined(spec) and len(storage.list_files(str(lake))) == 3  # nothing moved out of the lake


def test_a_window_with_no_batch_carrying_a_new_feature_fails_without_quarantine(mlops_home):
    spec = _spec(categorical="plan, region, payment_method, contract")
    lake = _lake(spec)
    _batch(1).to_parquet(lake / "1.parquet", index=False)
    with pytest.raises(IngestError, match=r"no batch of the 1 read has column\(s\) \['contract'\].*data.renamed"):
        data_stages.ingest_labeled(spec, "r1")
    assert not _quarantined(spec) and storage.list_files(str(lake)) == [str(lake / "1.parquet")]


def test_renames_that_cannot_be_right_are_refused():
    with pytest.raises(SpecError, match="'plan' is still a column of the spec"):
        _spec(extra="  renamed: {plan: region}")
    with pytest.raises(SpecError, match="renamed to 'plan_tire', which the spec does not use"):
        _spec(extra="  renamed: {plan_old: plan_tire}")


@pytest.fixture
def registry(mlops_home):
    return Registry(f"sqlite:///{mlops_home}/mlflow.db")


def _train_and_gate(spec, registry: Registry, run_id: str) -> tuple[dict, dict]:
    lineage = {"dag_id": "changes_training", "run_id": run_id}
    dataset = data_stages.ingest_labeled(spec, run_id)
    split = data_stages.split_dataset(spec, dataset, run_id)
    training = model_stages.train_model(spec, registry, split, dataset, lineage)
    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage)
    return evaluation, release.gate_candidate(spec, registry, registered, evaluation)


def test_the_champion_is_judged_on_the_new_test_split_after_each_kind_of_change(registry):
    first = _spec()
    lake = _lake(first)
    _batch(1).to_parquet(lake / "1.parquet", index=False)
    _, gate = _train_and_gate(first, registry, "r1")
    release.promote_candidate(registry, gate, by="test")

    # Renamed: the champion (trained on "plan") is fed the renamed column under its old name.
    renamed = _spec(categorical="plan_tier, region", extra="  renamed: {plan: plan_tier}")
    _batch(2).rename(columns={"plan": "plan_tier"}).to_parquet(lake / "2.parquet", index=False)
    evaluation, gate = _train_and_gate(renamed, registry, "r2")
    assert evaluation["champion_error"] is None and evaluation["champion_version"] == "1"
    assert set(evaluation["champion"]) == set(evaluation["candidate"])
    assert not any("could not be evaluated" in reason for reason in gate["reasons"])
    # Batch scoring and monitoring keep using that champion under the new spec until another is promoted.
    scoring = Path(layout.lake_dir(renamed.name, "scoring"))
    scoring.mkdir(parents=True)
    _batch(5, rows=400).rename(columns={"plan": "plan_tier"}).to_parquet(scoring / "s.parquet", index=False)
    summary = operate_stages.score_batches(renamed, registry, [str(scoring / "s.parquet")], "score-1")
    log = tables.read_table(summary["prediction_log_uris"][0])
    assert len(log) == 400 and "plan_tier" in log.columns and log["score"].between(0, 1).all()
    drift = operate_stages.monitor_drift(renamed, registry, summary["prediction_log_uris"], "monitor-1")
    features = {row["feature"] for row in storage.read_json(drift["report_uri"])["features"]}
    assert "plan_tier" in features and not drift["drift_detected"]

    # Added (the rename kept): the champion ignores the new column and is compared as usual.
    added = _spec(categorical="plan_tier, region, payment_method", extra="  renamed: {plan: plan_tier}")
    evaluation, gate = _train_and_gate(added, registry, "r3")
    assert evaluation["champion_error"] is None and evaluation["champion"]["roc_auc"] > 0.5

    # Removed: the champion needs a column the new data no longer has; the gate says so and refuses.
    removed = _spec(numeric="tenure_months, monthly_charges", categorical="plan_tier, region",
                    extra="  renamed: {plan: plan_tier}")  # fmt: skip
    evaluation, gate = _train_and_gate(removed, registry, "r4")
    assert "support_calls" in evaluation["champion_error"] and not gate["promote"]
    assert "could not be evaluated on this test split" in gate["reasons"][0]
    assert str(registry.champion(first.registered_model_name).version) == "1"
