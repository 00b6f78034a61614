"""Chunked profiling: merged chunk profiles equal a one-shot profile where exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.profiling import SKETCH_SIZE, TableProfiler, profile_frame

pytestmark = pytest.mark.unit


def test_exact_statistics_do_not_depend_on_chunking():
    frame = synthetic.churn_batch(5000, seed=1)
    one, many = profile_frame(frame, chunk_rows=5000), profile_frame(frame, chunk_rows=700)
    for column in ("monthly_charges", "plan", "churned"):
        for key in ("count", "nulls", "distinct", "min", "max"):
            assert one["columns"][column].get(key) == many["columns"][column].get(key), (column, key)
    assert one["columns"]["monthly_charges"]["mean"] == pytest.approx(many["columns"]["monthly_charges"]["mean"])
    assert one["columns"]["plan"]["top_values"] == many["columns"]["plan"]["top_values"]


def test_numeric_statistics_match_pandas():
    frame = synthetic.churn_batch(5000, seed=1)
    stats = profile_frame(frame, chunk_rows=999)["columns"]["monthly_charges"]
    column = frame["monthly_charges"]
    assert stats["nulls"] == int(column.isna().sum())
    assert stats["mean"] == pytest.approx(column.mean())
    assert stats["std"] == pytest.approx(column.std(), rel=1e-9)
    assert stats["min"] == column.min() and stats["max"] == column.max()
    assert stats["quantiles"]["p50"] == pytest.approx(column.median(), rel=1e-9)  # sample holds every value here
    assert sum(stats["histogram"]["counts"]) == column.notna().sum()


def test_large_columns_get_estimated_distinct_and_sampled_quantiles():
    rng = np.random.default_rng(3)
    values = rng.normal(size=300_000)
    profiler = TableProfiler()
    for start in range(0, len(values), 50_000):
        profiler.add(pd.DataFrame({"x": values[start : start + 50_000], "id": np.arange(start, start + 50_000)}))
    result = profiler.result()["columns"]
    assert not result["id"]["distinct_is_exact"]
    assert result["id"]["distinct"] == pytest.approx(300_000, rel=0.05)
    assert result["x"]["quantiles"]["p95"] == pytest.approx(np.quantile(values, 0.95), abs=0.05)
    assert result["x"]["histogram"]["estimated_from_sample"]


def test_small_cardinality_is_exact_and_categories_are_listed():
    frame = pd.DataFrame({"c": pd.Series(["a", "b", None, "a"] * 1000, dtype="string")})
    stats = profile_frame(frame, chunk_rows=333)["columns"]["c"]
    assert stats["distinct"] == 2 and stats["distinct_is_exact"]
    assert stats["nulls"] == 1000 and stats["null_fraction"] == 0.25
    assert stats["categories"] == ["a", "b"] and stats["top_values"] == {"a": 2000, "b": 1000}
    assert SKETCH_SIZE > 2


def test_all_null_and_empty_columns_do_not_crash():
    frame = pd.DataFrame({"x": [np.nan] * 10, "s": pd.Series([None] * 10, dtype="string")})
    stats = profile_frame(frame)["columns"]
    assert stats["x"]["nulls"] == 10 and "mean" not in stats["x"]
    assert profile_frame(frame.iloc[0:0])["rows"] == 0


def test_distinct_stays_right_when_categories_outgrow_counting_midway():
    from airflow_mlops.core.data.profiling import DISTINCT_CAP

    low = pd.DataFrame({"c": pd.Series([f"v{i % 50}" for i in range(5000)], dtype="string")})
    high = pd.DataFrame({"c": pd.Series([f"w{i}" for i in range(3 * DISTINCT_CAP)], dtype="string")})
    profiler = TableProfiler()
    profiler.add(low)
    profiler.add(high)
    stats = profiler.result()["columns"]["c"]
    assert stats["distinct"] == pytest.approx(3 * DISTINCT_CAP + 50, rel=0.05)
    assert "top_values" not in stats
    merged = TableProfiler()
    merged.add(low)
    other = TableProfiler()
    other.add(high)
    merged.merge(other)
    assert merged.result()["columns"]["c"]["distinct"] == pytest.approx(3 * DISTINCT_CAP + 50, rel=0.05)
