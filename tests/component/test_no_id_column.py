"""A pipeline without ``data.id_column``: the split and deduplication key on a row fingerprint,
and validation, training, batch scoring, the prediction log, delayed labels and the serving
schema all work without an id."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.ingest import cast_declared
from airflow_mlops.core.data.splitting import assign_splits
from airflow_mlops.core.io import tables
from airflow_mlops.core.io.row_fingerprint import row_fingerprints
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.operations.prediction_log import PredictionLogger
from airflow_mlops.core.operations.prediction_log import labels as log_labels
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.serving.openapi import openapi_document
from airflow_mlops.serving.payload import InputSchema, parse_body
from airflow_mlops.spec import parse_spec

pytestmark = pytest.mark.component

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "usage_gb", "plan", "region", "payment_method"]
SPEC = """
name: noid
data:
  label: churned
  dtypes: {churned: int}
  features:
    numeric: [tenure_months, monthly_charges, support_calls, usage_gb]
    categorical: [plan, region, payment_method]
validation: {min_rows: 100}
model: {estimator: logistic_regression, params: {max_iter: 500}}
packaging: {onnx: "off"}
promotion: {metric: roc_auc}
"""


@pytest.fixture
def noid():
    return parse_spec(SPEC)


def _rows(rows: int, seed: int) -> pd.DataFrame:
    """Churn rows without their id column."""
    return synthetic.churn_batch(rows, seed=seed).drop(columns=["customer_id"])


def _typed(frame: pd.DataFrame, spec) -> pd.DataFrame:
    return cast_declared(frame, spec.declared_types)


def test_a_spec_without_id_is_valid_and_declares_no_id_type(noid):
    assert noid.data.id_column is None
    assert set(noid.declared_types) == {*FEATURES, "churned"}
    assert noid.row_columns == [*FEATURES, "churned"]
    assert noid.cleaning.deduplicate.enabled  # on by default, keyed on the features and the label


def test_fingerprint_ignores_column_order_chunking_format_and_number_formatting(noid):
    frame = _rows(400, seed=3)
    split = assign_splits(_typed(frame, noid), noid)
    # The same rows as CSV text with other number spellings, columns reversed, read in two chunks.
    text = frame.iloc[:, ::-1].copy()

    def spelled(value: float, i: int) -> str:  # 27.99 as "27.990000" or "27.99"; missing as "" or "NA"
        if pd.isna(value):
            return "NA" if i % 2 else ""
        return f"{value:.6f}" if i % 2 else repr(float(value))

    for column in ("monthly_charges", "tenure_months", "usage_gb"):
        text[column] = [spelled(v, i) for i, v in enumerate(frame[column])]
    assert frame[["monthly_charges", "usage_gb"]].isna().any().any()  # missing values are part of the check
    csv = pd.read_csv(io.StringIO(text.to_csv(index=False)), dtype=str, keep_default_na=False, na_values=["", "NA"])
    chunks = [_typed(csv.iloc[:150], noid), _typed(csv.iloc[150:], noid)]
    again = np.concatenate([assign_splits(chunk, noid) for chunk in chunks])
    assert (split == again).all()
    # Where a row sits (its neighbours, its file) does not matter either.
    shuffled = frame.sample(frac=1.0, random_state=0)
    moved = assign_splits(_typed(shuffled, noid), noid)
    assert (pd.Series(moved, index=shuffled.index).sort_index().to_numpy() == split).all()


def test_fingerprint_changes_with_a_value_and_identical_rows_share_a_split(noid):
    frame = _typed(_rows(2000, seed=4), noid)
    before = row_fingerprints(frame, noid.row_columns)
    flipped = frame.assign(churned=1 - frame["churned"])
    assert (row_fingerprints(flipped, noid.row_columns) != before).all()  # a corrected label is another row
    twice = pd.concat([frame, frame], ignore_index=True)
    split = assign_splits(twice, noid)
    assert (split[:2000] == split[2000:]).all()  # a copy can never be tested on while its twin trains
    shares = pd.Series(split[:2000]).value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.25, abs=0.03)


def _land(spec, name: str, frame: pd.DataFrame) -> str:
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(lake / name, index=False)
    return str(lake / name)


def test_ingest_validate_and_split_need_no_id(noid, mlops_home):
    first, second = _rows(1500, seed=1), _rows(1500, seed=2)
    _land(noid, "a.parquet", first)
    _land(noid, "b.parquet", pd.concat([second, first.head(100)]))  # an overlapping export
    dataset = data_stages.ingest_labeled(noid, "r1")
    assert dataset["rows"] == 3000 and dataset["duplicates_dropped"] == 100
    assert set(pd.read_parquet(dataset["uri"]).columns) == {*FEATURES, "churned"}
    report = data_stages.validate_dataset(noid, dataset, "r1")
    assert report["evaluated"] >= len(FEATURES) + 2  # every column exists, enough rows: no id check
    split = data_stages.split_dataset(noid, dataset, "r1")
    assert split["train"]["rows"] + split["test"]["rows"] == 3000


@pytest.fixture
def registry(mlops_home):
    return Registry(f"sqlite:///{mlops_home}/mlflow.db")


def test_train_score_log_and_join_delayed_labels_by_request_without_id(noid, registry):
    _land(noid, "a.parquet", _rows(2000, seed=1))
    lineage = {"dag_id": "noid_training", "run_id": "r1"}
    dataset = data_stages.ingest_labeled(noid, "r1")
    split = data_stages.split_dataset(noid, dataset, "r1")
    training = model_stages.train_model(noid, registry, split, dataset, lineage)
    evaluation = model_stages.evaluate_candidate(noid, registry, training, split["test"]["uri"])
    registered = release.register_candidate(noid, registry, training, evaluation, dataset, split, lineage)
    gate = release.gate_candidate(noid, registry, registered, evaluation)
    release.promote_candidate(registry, gate, by="test")

    batch = Path(layout.lake_dir(noid.name, "scoring")) / "s.parquet"
    batch.parent.mkdir(parents=True)
    scored = _rows(300, seed=9)
    scored.to_parquet(batch, index=False)
    summary = operate_stages.score_batches(noid, registry, [str(batch)], "score-1")
    log = tables.read_table(summary["prediction_log_uris"][0])
    assert len(log) == 300 and "customer_id" not in log.columns
    assert list(log.columns[:6]) == ["request_id", "row", "logged_at", "model_name", "model_version", "source_uri"]

    # Delayed labels join by request_id (+ row); a file keyed by some id column is unusable here.
    labels = Path(layout.labels_dir(noid.name))
    labels.mkdir(parents=True)
    pd.DataFrame({"request_id": log["request_id"], "row": 0, "churned": scored["churned"]}).to_parquet(
        labels / "by-request.parquet", index=False
    )
    pd.DataFrame({"customer_id": ["x"], "churned": [1]}).to_parquet(labels / "by-id.parquet", index=False)
    joined, unusable = log_labels.labeled_predictions(noid, "1", dt.date.today() - dt.timedelta(days=1))
    assert len(joined) == 300 and unusable == [str(labels / "by-id.parquet")]
    assert (joined.set_index("request_id")["label"] == log.set_index("request_id").index.map(
        dict(zip(log["request_id"], scored["churned"], strict=True)))).all()  # fmt: skip
    assert str(registry.champion(noid.registered_model_name).version) == "1"


def test_prediction_log_without_id_has_no_id_column(noid, tmp_path):
    logger = PredictionLogger(str(tmp_path), "m", None, ["x"], ["c"], flush_rows=10, flush_seconds=60)
    features = {"x": np.array([1.0, 2.0]), "c": np.array(["a", "b"], dtype=object)}
    logger.append("req-1", "1", features, np.array([0, 1]), np.array([0.2, 0.8]))
    logger.close()
    (path,) = list(tmp_path.rglob("*.parquet"))
    table = pq.read_table(path)
    assert table.column_names == [
        "request_id", "row", "logged_at", "model_name", "model_version", "source_uri", "x", "c", "prediction", "score"
    ]  # fmt: skip


def test_serving_schema_takes_rows_without_id(noid):
    schema = InputSchema.from_spec(noid)
    assert schema.id_column is None
    row = {"tenure_months": 3, "monthly_charges": 50.0, "support_calls": 1, "usage_gb": 2.5,
           "plan": "basic", "region": "north", "payment_method": "card", "customer_id": "ignored"}  # fmt: skip
    inputs = parse_body(msgspec.json.encode({"instances": [row, row]}), schema)
    assert inputs.rows == 2 and inputs.ids is None
    general = parse_body(json.dumps({"inputs": {k: [v] for k, v in row.items()}}).encode(), schema)
    assert general.rows == 1 and general.ids is None
    document = openapi_document(schema, "t", "1")
    properties = json.dumps(document)
    assert "customer_id" not in properties and "entity id" not in properties


def test_fingerprint_reads_times_as_instants_and_booleans_as_numbers():
    naive = pd.DataFrame({"t": pd.to_datetime(["2026-01-01 10:00", None]), "b": pd.array([True, None], "boolean")})
    aware = pd.DataFrame({"t": pd.to_datetime(["2026-01-01T11:00+01:00", None], utc=True), "b": [1.0, np.nan]})
    assert (row_fingerprints(naive, ["t", "b"]) == row_fingerprints(aware, ["t", "b"])).all()
    later = aware.assign(t=aware["t"] + pd.Timedelta(seconds=1))
    assert row_fingerprints(later, ["t", "b"])[0] != row_fingerprints(aware, ["t", "b"])[0]
    # Missing is one value whatever the column's type, but a column's name counts.
    assert row_fingerprints(naive, ["t", "b"])[1] == row_fingerprints(aware, ["t", "b"])[1]
    assert (row_fingerprints(naive.rename(columns={"b": "c"}), ["t", "c"]) != row_fingerprints(naive, ["t", "b"])).all()
