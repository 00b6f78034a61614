"""Chunked batch scoring: the same predictions as whole-file scoring, a row group per chunk,
and nothing published when a file fails halfway."""

from __future__ import annotations

import math
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import sources as file_readers
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.validation.suite import DataValidationError
from airflow_mlops.core.io import tables
from airflow_mlops.core.model import release
from airflow_mlops.core.operations import scoring
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.operations.prediction_log import batch as log_batch
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.spec import ScoringSpec, load_spec
from tests.component.core.test_stages import _land_and_claim, _train
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

ROWS = 3000
LOG_HEAD = ["request_id", "row", "logged_at", "model_name", "model_version", "source_uri"]


def trained_champion(tmp_path_factory) -> tuple[str, Registry]:
    """A home holding the example spec's champion, and its registry (training is the slow part)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
            patch.delenv(var, raising=False)
        patch.setenv("AIRFLOW_MLOPS_HOME", str(home))
        spec = load_spec(EXAMPLE_SPEC)
        registry = Registry(f"sqlite:///{home}/mlflow.db")
        _land_and_claim(spec, "training", seed=1)
        release.promote_candidate(registry, _train(spec, registry, "run-1"), by="test")
    return str(home), registry


def use_champion(champion_home: tuple[str, Registry], monkeypatch, tmp_path) -> Registry:
    """Point the roots at the champion's home, with an artifact root of this test's own."""
    home, registry = champion_home
    monkeypatch.delenv("AIRFLOW_MLOPS_LANDING_ROOT", raising=False)
    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", home)
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    return registry


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory):
    """One champion for the module; each test gets its own artifact root."""
    return trained_champion(tmp_path_factory)


@pytest.fixture
def registry(champion_home, monkeypatch, tmp_path):
    return use_champion(champion_home, monkeypatch, tmp_path)


def _chunked(spec, rows: int):
    return spec.model_copy(update={"scoring": ScoringSpec(chunk_rows=rows)})


def _write_batch(spec, name: str, seed: int = 5, label: bool = True) -> tuple[pd.DataFrame, str]:
    batch = synthetic.churn_batch(ROWS, seed=seed)
    if not label:
        batch = batch.drop(columns=[spec.data.label])
    uri = layout.join(layout.lake_dir(spec.name, "scoring"), name)
    if name.endswith(".csv"):
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        batch.to_csv(uri, index=False)
    else:
        tables.write_parquet(batch, uri)
    return batch, uri


def _everything_under(folder: str) -> list[str]:
    return sorted(os.path.join(d, n) for d, _, names in os.walk(folder) for n in names)


def _comparable(log: pd.DataFrame) -> pd.DataFrame:
    return log.drop(columns=["request_id", "logged_at", "source_uri"]).reset_index(drop=True)


def test_chunked_scoring_writes_the_same_predictions_as_whole_file_scoring(spec, registry):
    batch, uri = _write_batch(spec, "b.parquet")
    chunked = operate_stages.score_batches(_chunked(spec, 700), registry, [uri], "chunked")
    whole = operate_stages.score_batches(_chunked(spec, ROWS), registry, [uri], "whole")

    log_uri = chunked["prediction_log_uris"][0]
    log = tables.read_table(log_uri)
    assert chunked["rows"] == len(log) == ROWS and log["request_id"].is_unique
    pd.testing.assert_frame_equal(_comparable(log), _comparable(tables.read_table(whole["prediction_log_uris"][0])))
    # One row group per chunk: the file was read and written 700 rows at a time.
    assert pq.ParquetFile(log_uri).metadata.num_row_groups == math.ceil(ROWS / 700)
    assert pq.ParquetFile(whole["prediction_log_uris"][0]).metadata.num_row_groups == 1

    features = spec.data.features.model_inputs
    expected = [*LOG_HEAD, spec.data.id_column, *features, "prediction", "score"]
    assert list(log.columns) == expected
    assert str(log["row"].dtype) == "int64" and set(log["row"]) == {0}
    assert log[spec.data.id_column].tolist() == batch[spec.data.id_column].tolist()
    assert set(log["source_uri"]) == {uri} and set(log["model_version"]) == {"1"}
    # The labeled batch joins the history as it was.
    (feedback,) = chunked["labeled_feedback_uris"]
    pd.testing.assert_frame_equal(tables.read_table(feedback), tables.read_table(uri))


def test_csv_is_converted_chunkwise_and_scores_like_parquet(spec, registry):
    _, parquet_uri = _write_batch(spec, "same.parquet")
    _, csv_uri = _write_batch(spec, "same.csv")
    small = _chunked(spec, 1000)
    from_csv = operate_stages.score_batches(small, registry, [csv_uri], "csv")
    from_parquet = operate_stages.score_batches(small, registry, [parquet_uri], "parquet")
    csv_log = tables.read_table(from_csv["prediction_log_uris"][0])
    parquet_log = tables.read_table(from_parquet["prediction_log_uris"][0])
    pd.testing.assert_frame_equal(_comparable(csv_log), _comparable(parquet_log), check_dtype=False)
    assert pq.ParquetFile(from_csv["prediction_log_uris"][0]).metadata.num_row_groups == 3
    # The labeled copy is Parquet, named so, after the input, the run and the input's position.
    (feedback,) = from_csv["labeled_feedback_uris"]
    assert "/labeled/same." in feedback and feedback.endswith(".parquet") and len(tables.read_table(feedback)) == ROWS


def test_a_file_failing_validation_publishes_no_log_and_no_feedback(spec, registry):
    _, good = _write_batch(spec, "good.parquet")
    batch, _ = _write_batch(spec, "bad.parquet")
    batch.loc[ROWS - 3 :, "plan"] = "platinum"  # the last chunk is the bad one
    bad = tables.write_parquet(batch, layout.join(layout.lake_dir(spec.name, "scoring"), "bad.parquet"))
    with pytest.raises(DataValidationError, match="platinum"):
        operate_stages.score_batches(_chunked(spec, 500), registry, [good, bad], "bad")
    assert _everything_under(layout.prediction_log_dir(spec.name)) == []
    assert _everything_under(layout.lake_dir(spec.name, "labeled")) == []


def test_an_exception_mid_file_publishes_no_log(spec, registry, monkeypatch):
    _, uri = _write_batch(spec, "b.parquet", label=False)
    real = log_batch.prediction_log_frame
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker lost halfway")
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "prediction_log_frame", failing)  # where score_file looks it up
    with pytest.raises(RuntimeError, match="halfway"):
        operate_stages.score_batches(_chunked(spec, 1000), registry, [uri], "boom")
    assert len(calls) == 3
    assert _everything_under(layout.prediction_log_dir(spec.name)) == []
    assert not os.path.exists(layout.run_dir(spec.name, "boom", "score"))


def test_a_batch_without_labels_is_scored_and_not_copied(spec, registry):
    _, uri = _write_batch(spec, "nolabel.parquet", label=False)
    summary = operate_stages.score_batches(_chunked(spec, 1024), registry, [uri], "nolabel")
    assert summary["rows"] == ROWS and summary["labeled_feedback_uris"] == []
    assert pq.ParquetFile(summary["prediction_log_uris"][0]).metadata.num_row_groups == 3


def test_later_chunks_are_cast_to_the_declared_schema_not_to_the_first_chunks(spec, registry, monkeypatch):
    monkeypatch.setattr(file_readers, "CSV_BLOCK_BYTES", 16 << 10)  # CSV read in blocks of ~200 rows
    batch = synthetic.churn_batch(ROWS, seed=5)
    batch["note"] = [None] * 2000 + ["vip"] * (ROWS - 2000)  # undeclared, empty in the first chunks
    batch["visits"] = [float(i) for i in range(2500)] + [0.5] * (ROWS - 2500)  # undeclared; ints, then fractions
    folder = layout.lake_dir(spec.name, "scoring")
    os.makedirs(folder, exist_ok=True)
    csv_uri, jsonl_uri = os.path.join(folder, "b.csv"), os.path.join(folder, "b.jsonl")
    batch.to_csv(csv_uri, index=False)
    batch.iloc[:2500].assign(visits=lambda f: f["visits"].astype("int64")).to_json(
        jsonl_uri, orient="records", lines=True
    )
    with open(jsonl_uri, "a") as handle:
        handle.write(batch.iloc[2500:].to_json(orient="records", lines=True))
    summary = operate_stages.score_batches(_chunked(spec, 1000), registry, [csv_uri, jsonl_uri], "mixed")
    assert summary["rows"] == 2 * ROWS
    for feedback in summary["labeled_feedback_uris"]:
        schema = pq.read_schema(feedback)
        assert str(schema.field("note").type) == "string" and str(schema.field("churned").type) == "int64"
        copy = tables.read_table(feedback)
        assert copy["note"].isna().sum() == 2000 and set(copy["note"].dropna()) == {"vip"}
    copy = tables.read_table(summary["labeled_feedback_uris"][1])  # JSON Lines: numbers stay numbers
    assert str(pq.read_schema(summary["labeled_feedback_uris"][1]).field("visits").type) == "double"
    assert copy["visits"].iloc[2499] == 2499 and copy["visits"].iloc[2500] == 0.5


def test_labeled_copies_are_named_per_input_and_never_overwritten_or_added_twice(spec, registry):
    _, january = _write_batch(spec, "sales.2026-01.csv")
    _, february = _write_batch(spec, "sales.2026-02.csv", seed=6)
    first = operate_stages.score_batches(spec, registry, [january, february], "run-1")
    names = [uri.rsplit("/", 1)[-1] for uri in first["labeled_feedback_uris"]]
    assert [n.split(".")[0:2] for n in names] == [["sales", "2026-01"], ["sales", "2026-02"]] and len(set(names)) == 2
    assert len(set(tables.read_table(first["labeled_feedback_uris"][1])["customer_id"])) == ROWS
    # Scoring the same input again (a retry, or a manual re-run) keeps the copy as it is.
    kept = first["labeled_feedback_uris"][0]
    tables.write_parquet(pd.DataFrame({"marker": [1]}), kept)
    again = operate_stages.score_batches(spec, registry, [january], "manual-rerun")
    assert again["labeled_feedback_uris"] == [kept] and list(tables.read_table(kept).columns) == ["marker"]
    assert scoring.feedback_name("s3://b/x/a.csv.gz").startswith("a.")
    assert scoring.feedback_name("s3://b/x/a.csv.gz") != scoring.feedback_name("s3://b/y/a.csv.gz")
    assert len(_everything_under(layout.lake_dir(spec.name, "labeled"))) == 2
