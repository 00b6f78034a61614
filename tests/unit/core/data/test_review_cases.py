"""Cases found in review of the data stage: each pins the behaviour that was wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import ingest, sources, synthetic
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data.cleaning import apply_clip
from airflow_mlops.core.data.profiling import profile_frame
from airflow_mlops.core.data.splitting import split_frame
from airflow_mlops.core.data.validation.suite import DataValidationError
from airflow_mlops.core.io import tables
from airflow_mlops.spec import LabelingSpec, SplitSpec

pytestmark = pytest.mark.unit


def test_a_rule_over_a_missing_value_leaves_the_row_unlabeled(spec, tmp_path):
    frame = synthetic.churn_batch(400, seed=1).drop(columns=["churned"])
    uri = tables.write_parquet(frame, str(tmp_path / "in.parquet"))
    ruled = spec.model_copy(update={"labeling": LabelingSpec(rule="usage_gb > 50")})
    result = ingest.ingest(ruled, [uri], str(tmp_path / "out.parquet"))
    assert result.unlabeled_rows == int(frame["usage_gb"].isna().sum()) > 0


def test_time_split_refuses_text_dates(spec):
    frame = synthetic.churn_batch(100, seed=1).assign(when="01/02/2026")
    with pytest.raises(ValueError, match=r"declare it in data\.dtypes as datetime"):
        split_frame(frame, spec.model_copy(update={"split": SplitSpec(method="time", time_column="when")}))


def test_declared_datetimes_parse_as_iso_and_refuse_epoch_numbers():
    parsed = ingest.cast_declared(pd.DataFrame({"t": ["2026-02-01", "2026-02-13T10:00:00"]}), {"t": "datetime"})
    assert parsed["t"].dt.month.tolist() == [2, 2]
    with pytest.raises(sources.IngestError, match="holds numbers"):
        ingest.cast_declared(pd.DataFrame({"t": [1700000000]}), {"t": "datetime"})


def test_bool_columns_accept_numeric_zero_and_one():
    cast = ingest.cast_declared(pd.DataFrame({"b": [1.0, 0.0, np.nan]}), {"b": "bool"})
    assert cast["b"].tolist()[:2] == [True, False] and pd.isna(cast["b"].iloc[2])


def test_clipping_works_on_integer_columns():
    clipped = apply_clip(pd.DataFrame({"x": pd.array([1, 5, 9], dtype="Int64")}), {"x": (1.5, 8.0)})
    assert clipped["x"].tolist() == [1.5, 5.0, 8.0]


def test_histogram_of_a_column_ending_at_zero():
    stats = profile_frame(pd.DataFrame({"x": [-5.0, -3.0, -1.0, 0.0]}))["columns"]["x"]
    assert stats["histogram"]["edges"][-1] == 0.0 and sum(stats["histogram"]["counts"]) == 4
    assert stats["histogram"]["counts"][-1] >= 1


def test_only_the_bad_batch_is_quarantined_when_each_batch_is_below_min_rows(spec, mlops_home):
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True)
    for number in range(3):
        batch = synthetic.churn_batch(80, seed=number + 1)
        if number == 2:
            batch.loc[0, "tenure_months"] = 999.0
        tables.write_parquet(batch, str(lake / f"{number}.parquet"))
    dataset = data_stages.ingest_labeled(spec, "r")
    with pytest.raises(DataValidationError, match="tenure_months"):
        data_stages.validate_dataset(spec, dataset, "r")
    assert sorted(p.name for p in lake.iterdir()) == ["0.parquet", "1.parquet"]


def test_large_integers_keep_every_digit():
    big = 9007199254740993  # 2**53 + 1: a float64 would round it
    assert ingest.cast_declared(pd.DataFrame({"n": [big, 1]}), {"n": "int"})["n"].tolist() == [big, 1]
    as_text = pd.DataFrame({"n": pd.Series([str(big), "1"], dtype="string")})  # how CSV arrives
    assert ingest.cast_declared(as_text, {"n": "int"})["n"].tolist() == [big, 1]
