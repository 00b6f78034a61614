"""Both writers of the prediction log write the one schema ``spec.prediction_log`` defines."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.io import storage
from airflow_mlops.core.operations.prediction_log import PredictionLogger
from airflow_mlops.core.operations.prediction_log.batch import LogContext, log_table, prediction_log_frame
from airflow_mlops.spec import parse_spec
from airflow_mlops.spec.prediction_log import FEATURE_TYPES, LEADING_COLUMNS, TRAILING_COLUMNS, log_columns

pytestmark = pytest.mark.unit

SPEC = """
name: schema_check
data:
  label: churned
  id_column: customer_id
  features: {numeric: [tenure, charges], categorical: [plan]}
model:
  task: classification
  candidates: [{estimator: logistic_regression}]
"""
FIXED = {c.name: c.arrow_type for c in (*LEADING_COLUMNS, *TRAILING_COLUMNS)}


class _ThreeClasses:
    """Stands in for a fitted classifier of three classes (the log needs predict and predict_proba)."""

    classes_ = np.array(["a", "b", "c"])

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.array(["a"] * len(features))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return np.tile([0.5, 0.3, 0.2], (len(features), 1))


def _check_types(schema, inputs_types: dict[str, str]) -> None:
    for field in schema:
        expected = FIXED.get(field.name) or inputs_types.get(field.name)
        assert expected is not None, f"column {field.name!r} is not in the schema definition"
        if expected == "<label type>":
            continue
        # Text is Arrow string or large_string (pyarrow's split and pandas' str give the latter);
        # Parquet stores both as UTF-8 and the readers take either.
        actual = str(field.type).replace("large_string", "string")
        if expected.startswith("map<"):
            actual = actual.split(" (")[0] + ">" if " (" in actual else actual
        assert actual == expected, (field.name, str(field.type), expected)


def test_the_serving_logger_writes_the_defined_columns_in_order(tmp_path):
    log = PredictionLogger(str(tmp_path), "m", "customer_id", ["tenure", "charges"], ["plan"], client_request_ids=True)
    log.append(
        "r1",
        "3",
        {"tenure": np.array([1.0, 2.0]), "charges": np.array([3.0, 4.0]), "plan": np.array(["x", ""], dtype=object)},
        np.array(["a", "b"], dtype=object),
        np.array([0.5, 0.6]),
        ids=["c1", None],
        probabilities=np.array([[0.5, 0.3, 0.2], [0.2, 0.6, 0.2]]),
        classes=("a", "b", "c"),
        client_request_id="client-1",
    )
    log.close()
    (uri,) = log.files
    schema = pq.read_schema(storage.local_path(uri))
    assert schema.names == log_columns(
        "customer_id", ["tenure", "charges", "plan"], serving=True, score=True, probabilities=True
    )
    types = {
        "tenure": FEATURE_TYPES["numeric"],
        "charges": FEATURE_TYPES["numeric"],
        "plan": FEATURE_TYPES["categorical"],
    }
    _check_types(schema, {**types, "customer_id": "string"})


def test_batch_scoring_writes_the_same_columns_without_the_client_id():
    spec = parse_spec(SPEC)
    frame = pd.DataFrame({"customer_id": ["c1", "c2"], "tenure": [1, 2], "charges": [3.0, 4.0], "plan": ["x", None]})
    context = LogContext("m", "3", "file:///batch.parquet", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    table = log_table(prediction_log_frame(frame, _ThreeClasses(), spec, context), _ThreeClasses())
    assert table.schema.names == log_columns(
        "customer_id", ["tenure", "charges", "plan"], serving=False, score=True, probabilities=True
    )
    _check_types(table.schema, {"customer_id": "string", "tenure": "double", "charges": "double", "plan": "string"})


def test_without_an_id_column_or_scores_the_log_has_neither():
    assert log_columns(None, ["x"], serving=False, score=False, probabilities=False) == [
        "request_id", "row", "logged_at", "model_name", "model_version", "source_uri", "x", "prediction",
    ]  # fmt: skip
