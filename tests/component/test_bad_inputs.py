"""A corpus of broken inputs: each is stopped with a message naming what is wrong, leaves no
dataset behind, and the offending file is quarantined with its report (never deleted)."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.sources import IngestError
from airflow_mlops.core.data.validation.suite import DataValidationError
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec

pytestmark = pytest.mark.component

RUN = "bad-input-run"


def _frame() -> pd.DataFrame:
    return synthetic.churn_batch(300, seed=1)


def _csv(frame: pd.DataFrame, **kwargs) -> bytes:
    return frame.to_csv(index=False, **kwargs).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _with(column: str, values) -> pd.DataFrame:
    frame = _frame()
    frame[column] = frame[column].astype("object")
    frame.loc[: len(values) - 1, column] = values
    return frame


def _lines(frame: pd.DataFrame) -> list[str]:
    return frame.to_csv(index=False).splitlines()


def _huge_field() -> bytes:
    lines = _lines(_frame())
    first = lines[1].split(",")
    first[0] = "x" * (9 << 20)
    return "\n".join([lines[0], ",".join(first), *lines[2:]]).encode()


# name -> (file name, content builder, error type, message fragment)
CASES: dict[str, tuple[str, Callable[[], bytes], type[Exception], str]] = {
    "empty csv": ("a.csv", lambda: b"", IngestError, "the file is empty (0 bytes)"),
    "empty parquet": ("a.parquet", lambda: b"", IngestError, "the file is empty (0 bytes)"),
    "header only": ("a.csv", lambda: _csv(_frame().iloc[0:0]), IngestError, "no data rows (only a header?)"),
    "wrong delimiter": (
        "a.csv",
        lambda: _csv(_frame(), sep=";"),
        IngestError,
        "is data.source.csv.delimiter right (';' found)",
    ),
    "missing label column": (
        "a.csv",
        lambda: _csv(_frame().drop(columns=["churned"])),
        IngestError,
        "missing required column(s) ['churned']",
    ),
    "text in a numeric column": (
        "a.csv",
        lambda: _csv(_with("tenure_months", ["abc", "12x"])),
        IngestError,
        "column 'tenure_months' is declared float but has non-numeric values ['abc', '12x']",
    ),
    "all-null feature": (
        "a.parquet",
        lambda: _parquet(_frame().assign(usage_gb=float("nan"))),
        IngestError,
        "feature column(s) ['usage_gb'] are entirely empty",
    ),
    "every label missing": (
        "a.csv",
        lambda: _csv(_frame().assign(churned=None)),
        IngestError,
        "no labeled rows: all 300 row(s) lack the label 'churned'",
    ),
    "infinite values": (
        "a.parquet",
        lambda: _parquet(_with("monthly_charges", [float("inf")])),
        IngestError,
        "column 'monthly_charges' has 1 infinite value(s)",
    ),
    "fractional label declared int": (
        "a.csv",
        lambda: _csv(_with("churned", [0.5])),
        IngestError,
        "column 'churned' is declared int but has fractional values [0.5]",
    ),
    "broken encoding": (
        "a.csv",
        lambda: _csv(_frame()).replace(b"basic", "b\u00e1sic".encode("latin-1")),
        IngestError,
        "text is not valid utf-8; set data.source.csv.encoding",
    ),
    "truncated parquet": (
        "a.parquet",
        lambda: _parquet(_frame())[:1500],
        IngestError,
        "not a readable Parquet file (truncated or corrupt?)",
    ),
    "parquet bytes with a csv name": ("a.csv", lambda: _parquet(_frame()), IngestError, "looks like a binary file"),
    "random bytes": ("a.jsonl", lambda: os.urandom(8000), IngestError, "looks like a binary file"),
    "huge single field": ("a.csv", _huge_field, IngestError, "holds a value of 9,437,184 characters"),
    "ragged row": (
        "a.csv",
        lambda: "\n".join([*_lines(_frame())[:2], _lines(_frame())[2] + ",surplus"]).encode(),
        IngestError,
        "rows have different numbers of fields",
    ),
    "unclosed quote": (
        "a.csv",
        lambda: "\n".join([_lines(_frame())[0], '"c1,' + _lines(_frame())[1], *_lines(_frame())[2:]]).encode(),
        IngestError,
        "an unclosed quote",
    ),
    "malformed json line": (
        "a.jsonl",
        lambda: b'{"customer_id": "a"}\n{not json\n',
        IngestError,
        "not valid JSON Lines",
    ),
    "json arrays instead of objects": (
        "a.jsonl",
        lambda: b"[1, 2]\n[3, 4]\n",
        IngestError,
        "line 1 is a JSON array, not an object",
    ),
    "one json array of records": (
        "a.json",
        lambda: _frame().to_json(orient="records").encode(),
        IngestError,
        "holds one JSON array (records-oriented JSON); the reader takes JSON Lines",
    ),
    "one pretty-printed json object": (
        "a.json",
        lambda: _frame().to_json(orient="columns", indent=2).encode(),
        IngestError,
        "holds one JSON object spread over several lines; the reader takes JSON Lines",
    ),
    "corrupt gzip": ("a.csv.gz", lambda: gzip.compress(_csv(_frame()))[:400], IngestError, "not a readable gzip file"),
    "text named csv.gz": ("a.csv.gz", lambda: _csv(_frame()), IngestError, "not a readable gzip file"),
    "duplicate column names": (
        "a.csv",
        lambda: _csv(_frame().rename(columns={"region": "plan"})),
        IngestError,
        "column name(s) ['plan'] appear more than once",
    ),
    "nul byte past the first 4 KiB": (
        "a.csv",
        lambda: _csv(_frame())[:8000] + _csv(_frame())[8000:].replace(b"basic", b"ba\x00ic", 1),
        IngestError,
        "NUL byte(s) at offset",
    ),
    "duplicated ids": (  # the same ids with other values: exact duplicate rows are dropped, not refused
        "a.parquet",
        lambda: _parquet(pd.concat([_frame(), _frame().head(5).assign(tenure_months=1.0)])),
        DataValidationError,
        "expect_column_values_to_be_unique on column 'customer_id'",
    ),
    "null ids": (
        "a.parquet",
        lambda: _parquet(_with("customer_id", [None, None])),
        DataValidationError,
        "expect_column_values_to_not_be_null on column 'customer_id'",
    ),
    "label outside its set": (
        "a.parquet",
        lambda: _parquet(_frame().assign(churned=2)),
        DataValidationError,
        "expect_column_values_to_be_in_set on column 'churned'",
    ),
    "value out of range": (
        "a.csv",
        lambda: _csv(_with("tenure_months", [500.0])),
        DataValidationError,
        "expect_column_values_to_be_between on column 'tenure_months'",
    ),
    "unknown category": (
        "a.csv",
        lambda: _csv(_with("plan", ["platinum"])),
        DataValidationError,
        "expect_column_values_to_be_in_set on column 'plan'",
    ),
    "too few rows": (
        "a.parquet",
        lambda: _parquet(_frame().head(20)),
        DataValidationError,
        "expect_table_row_count_to_be_between",
    ),
}


def _spec(spec: PipelineSpec, **source) -> PipelineSpec:
    return spec.model_copy(
        update={"data": spec.data.model_copy(update={"source": spec.data.source.model_copy(update=source)})}
    )


def _run(spec: PipelineSpec) -> None:
    dataset = data_stages.ingest_labeled(spec, RUN)
    data_stages.validate_dataset(spec, dataset, RUN)


def test_the_corpus_has_at_least_36_distinct_cases():
    assert len(CASES) + 5 >= 36  # + the location, strict-schema and missing-feature cases below


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_batch_is_named_stopped_and_quarantined(case, spec, mlops_home):
    name, build, error, fragment = CASES[case]
    lake_file = Path(layout.lake_dir(spec.name, "labeled")) / name
    lake_file.parent.mkdir(parents=True, exist_ok=True)
    lake_file.write_bytes(build())

    with pytest.raises(error) as err:
        _run(spec)
    assert fragment in str(err.value)
    assert name in str(err.value) or error is DataValidationError  # ingest errors name the file

    quarantine = Path(layout.artifact_root()) / spec.name / "quarantine" / RUN
    assert (quarantine / name).exists() and (quarantine / f"{name}.report.json").exists()
    assert not lake_file.exists()  # out of the lake: the next run trains without it
    assert not (Path(layout.run_dir(spec.name, RUN, "split"))).exists()
    if error is IngestError:
        assert not Path(layout.run_dir(spec.name, RUN, "ingest"), "dataset.parquet").exists()


def test_external_source_files_are_copied_to_quarantine_not_moved(spec, mlops_home, tmp_path):
    source = tmp_path / "exports" / "day.csv"
    source.parent.mkdir()
    source.write_bytes(_csv(_with("tenure_months", ["abc"])))
    with pytest.raises(IngestError, match="non-numeric values"):
        _run(_spec(spec, uri=str(source)))
    assert source.exists()
    (copied,) = (Path(layout.artifact_root()) / spec.name / "quarantine" / RUN).glob("*-day.csv")
    assert copied.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("{tmp}/nothing/*.csv", "no input files match the pattern"),
        ("{tmp}/empty/", "no data files"),
        ("{tmp}/book.xlsx", "cannot tell the file format from its name"),
    ],
)
def test_bad_source_locations_are_named(spec, mlops_home, tmp_path, uri, fragment):
    (tmp_path / "empty").mkdir()
    (tmp_path / "book.xlsx").write_bytes(b"PK")
    with pytest.raises(IngestError) as err:
        _run(_spec(spec, uri=uri.format(tmp=tmp_path)))
    assert fragment in str(err.value)


def test_unexpected_column_is_refused_when_the_schema_is_strict(spec, mlops_home):
    lake_file = Path(layout.lake_dir(spec.name, "labeled")) / "extra.parquet"
    lake_file.parent.mkdir(parents=True)
    lake_file.write_bytes(_parquet(_frame().assign(surprise=1)))
    with pytest.raises(IngestError, match=r"unexpected column\(s\) \['surprise'\]"):
        _run(_spec(spec, extra_columns="error"))


def test_files_with_different_declared_columns_are_refused(spec, mlops_home):
    declared = spec.model_copy(update={"data": spec.data.model_copy(update={"dtypes": {"note": "string"}})})
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True)
    (lake / "1.parquet").write_bytes(_parquet(_frame().assign(note="x")))
    (lake / "2.parquet").write_bytes(_parquet(_frame()))
    with pytest.raises(IngestError, match="differ from those read first"):
        _run(declared)
    assert storage.list_files(str(lake)) == [f"{lake}/1.parquet"]


def test_a_batch_missing_a_feature_after_a_complete_one_is_named_and_quarantined(spec, mlops_home):
    # Before any complete batch it would be an older batch (see test_spec_changes.py); after one, it is bad data.
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True)
    (lake / "1.parquet").write_bytes(_parquet(_frame()))
    (lake / "2.parquet").write_bytes(_parquet(synthetic.churn_batch(300, seed=2).drop(columns=["plan"])))
    with pytest.raises(IngestError, match=r"2.parquet: missing required column\(s\) \['plan'\]"):
        _run(spec)
    quarantine = Path(layout.artifact_root()) / spec.name / "quarantine" / RUN
    assert (quarantine / "2.parquet").exists() and (quarantine / "2.parquet.report.json").exists()
    assert storage.list_files(str(lake)) == [f"{lake}/1.parquet"]


def test_undeclared_extra_columns_are_dropped_and_column_order_does_not_matter(spec, mlops_home):
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True)
    (lake / "1.parquet").write_bytes(_parquet(_frame()))
    (lake / "2.parquet").write_bytes(_parquet(synthetic.churn_batch(300, seed=2).assign(note="x").iloc[:, ::-1]))
    dataset = data_stages.ingest_labeled(spec, RUN)
    assert dataset["rows"] == 600 and "note" not in pd.read_parquet(dataset["uri"]).columns
