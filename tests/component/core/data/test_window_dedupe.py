"""Rows landed twice in the training window (a re-landed file, overlapping exports) are dropped
by default, counted, and logged on the MLflow run: re-landing a file changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.io import tables
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.spec import SpecError, parse_spec

pytestmark = pytest.mark.component

SPEC = """
name: dedupe
data:
  id_column: customer_id
  label: churned
  dtypes: {churned: int}
  features:
    numeric: [tenure_months, monthly_charges, support_calls, usage_gb]
    categorical: [plan, region, payment_method]
validation: {min_rows: 100}
split: {method: random, seed: 7}   # not by id: only deduplication keeps copies out of both splits
model: {estimator: logistic_regression, params: {max_iter: 500}}
packaging: {onnx: "off"}
evaluation: {plots: false}
"""


@pytest.fixture
def dedupe():
    return parse_spec(SPEC)


@pytest.fixture
def registry(mlops_home):
    return Registry(f"sqlite:///{mlops_home}/mlflow.db")


def _land(spec, name: str, frame: pd.DataFrame) -> None:
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True, exist_ok=True)
    if name.endswith(".csv"):
        frame.to_csv(lake / name, index=False)
    else:
        frame.to_parquet(lake / name, index=False)


def _train(spec, registry: Registry, run_id: str) -> tuple[dict, dict, dict]:
    dataset = data_stages.ingest_labeled(spec, run_id)
    split = data_stages.split_dataset(spec, dataset, run_id)
    lineage = {"dag_id": "dedupe_training", "run_id": run_id}
    training = model_stages.train_model(spec, registry, split, dataset, lineage)
    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    return dataset, split, {"training": training, "evaluation": evaluation}


def test_relanding_a_file_leaves_the_test_split_and_metrics_unchanged(dedupe, registry):
    a, b = synthetic.churn_batch(1500, seed=1), synthetic.churn_batch(1500, seed=2)
    _land(dedupe, "batch-1-a.parquet", a)
    _land(dedupe, "batch-2-b.parquet", b)
    first_data, first_split, first = _train(dedupe, registry, "run-1")
    assert first_data["duplicates_dropped"] == 0

    # The same file lands again as a new batch: CSV this time, its columns in another order.
    _land(dedupe, "batch-3-a-again.csv", a.iloc[:, ::-1])
    data, split, second = _train(dedupe, registry, "run-2")
    assert len(data["sources"]) == 3 and data["duplicates_dropped"] == 1500
    assert data["duplicates_by_source"] == {
        str(Path(layout.lake_dir(dedupe.name, "labeled")) / "batch-3-a-again.csv"): 1500
    }
    assert data["fingerprint"] == first_data["fingerprint"]  # the very same dataset
    assert split["test"]["fingerprint"] == first_split["test"]["fingerprint"]
    before, after = tables.read_table(first_split["test"]["uri"]), tables.read_table(split["test"]["uri"])
    pd.testing.assert_frame_equal(before, after)
    assert second["evaluation"]["candidate"] == first["evaluation"]["candidate"]

    run = registry.client.get_run(second["training"]["run_id"])
    assert run.data.params["duplicates_dropped"] == "1500" and run.data.params["batches_skipped_schema"] == "0"
    lineage = {"dag_id": "dedupe_training", "run_id": "run-2"}
    registered = release.register_candidate(
        dedupe, registry, second["training"], second["evaluation"], data, split, lineage
    )
    version = registry.client.get_model_version(registered["name"], registered["version"])
    assert version.tags["duplicates_dropped"] == "1500" and version.tags["batches_skipped_schema"] == "0"
    sources = registry.client.download_artifacts(run.info.run_id, "data/sources.json")
    assert json.loads(Path(sources).read_text())["duplicates_by_source"] == data["duplicates_by_source"]


def test_without_deduplication_the_copy_leaks_into_both_splits(dedupe, mlops_home):
    # What the default prevents: with deduplication off and a random split, copies straddle train and test.
    a = synthetic.churn_batch(1500, seed=1)
    _land(dedupe, "batch-1.parquet", a)
    _land(dedupe, "batch-2.parquet", a)
    off = parse_spec(SPEC + "cleaning: {deduplicate: {enabled: false}}\n")
    dataset = data_stages.ingest_labeled(off, "r-off")
    split = data_stages.split_dataset(off, dataset, "r-off")
    train, test = tables.read_table(split["train"]["uri"]), tables.read_table(split["test"]["uri"])
    assert dataset["rows"] == 3000 and dataset["duplicates_dropped"] == 0
    assert set(train["customer_id"]) & set(test["customer_id"])

    dataset = data_stages.ingest_labeled(dedupe, "r-on")
    split = data_stages.split_dataset(dedupe, dataset, "r-on")
    train, test = tables.read_table(split["train"]["uri"]), tables.read_table(split["test"]["uri"])
    assert dataset["rows"] == 1500 and dataset["duplicates_dropped"] == 1500
    assert not set(train["customer_id"]) & set(test["customer_id"])


def test_an_updated_record_of_an_id_is_kept_and_an_exact_copy_is_not(dedupe, mlops_home):
    a = synthetic.churn_batch(1000, seed=1)
    overlap = a.head(300).copy()
    overlap.loc[overlap.index[:100], "support_calls"] += 1  # 100 records changed since the first export
    _land(dedupe, "batch-1.parquet", a)
    _land(dedupe, "batch-2.parquet", pd.concat([overlap, synthetic.churn_batch(500, seed=2)]))
    dataset = data_stages.ingest_labeled(dedupe, "r1")
    assert dataset["duplicates_dropped"] == 200 and dataset["rows"] == 1000 + 100 + 500
    # One row per id instead: name the id as the subset (the first, oldest row of each id is kept).
    by_id = parse_spec(SPEC + "cleaning: {deduplicate: {subset: [customer_id]}}\n")
    dataset = data_stages.ingest_labeled(by_id, "r2")
    assert dataset["duplicates_dropped"] == 300 and dataset["rows"] == 1500


def test_switching_deduplication_off_takes_enabled_false_not_null():
    with pytest.raises(SpecError, match=r"cleaning.deduplicate: .*write \{enabled: false\}"):
        parse_spec(SPEC + "cleaning: {deduplicate: null}\n")
    assert not parse_spec(SPEC + "cleaning: {deduplicate: {enabled: false}}\n").cleaning.deduplicate.enabled
