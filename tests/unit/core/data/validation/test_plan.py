"""Column-by-column validation: batches hold only what each expectation reads, results are unchanged."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.validation.plan import frame_source, parquet_source, plan_batches
from airflow_mlops.core.data.validation.suite import DataValidationError, validate_batch, validate_source
from airflow_mlops.core.io import tables
from airflow_mlops.spec import ExpectationSpec

pytestmark = pytest.mark.unit


def item(kind: str, **kwargs) -> ExpectationSpec:
    return ExpectationSpec(type=kind, kwargs=kwargs)


def test_plan_groups_by_the_columns_each_expectation_reads():
    columns = ["id", "a", "b", "c"]
    items = [
        item("expect_column_to_exist", column="a"),
        item("expect_column_values_to_be_between", column="a", min_value=0),
        item("expect_column_pair_values_a_to_be_greater_than_b", column_A="b", column_B="a"),
        item("expect_table_row_count_to_be_between", min_value=1),
        item("expect_table_columns_to_match_set", column_set=columns),
        item("expect_compound_columns_to_be_unique", column_list=["id", "c"]),
        item("expect_column_values_to_not_be_null", column="c", row_condition='a > 3 and b == "x"'),
        item("expect_column_to_exist", column="zzz"),
        item("expect_table_row_count_to_equal_other_table", other_table_name="t"),
        item("expect_table_columns_to_match_ordered_list", column_list=["id", "a", "b", "c"]),
    ]
    plan = {(b.kind, b.columns): b.items for b in plan_batches(items, columns)}
    assert plan == {
        ("columns", ("a",)): (0, 1),
        ("columns", ("a", "b")): (2,),
        ("rows", ()): (3,),
        ("schema", ()): (4, 9),  # column_list of an ordered-list check names columns, it reads no data
        ("columns", ("c", "id")): (5,),
        ("columns", ("a", "b", "c")): (6,),  # the row condition's columns come along
        ("columns", ()): (7,),  # a column the table lacks: an empty frame with the table's rows
        ("table", ("id", "a", "b", "c")): (8,),  # columns unknown: the whole table
    }


def test_row_condition_names_match_whole_words_only():
    plan = plan_batches([item("expect_column_values_to_not_be_null", column="a", row_condition="ab > 1")], ["a", "ab"])
    assert [b.columns for b in plan] == [("a", "ab")]
    plan = plan_batches([item("expect_column_values_to_not_be_null", column="ab", row_condition="ab > 1")], ["a", "ab"])
    assert [b.columns for b in plan] == [("ab",)]


def test_whole_column_semantics_survive_the_split():
    """Uniqueness, mostly, pair and row-count checks see whole columns, so they judge like GX on the table."""
    frame = pd.DataFrame({"id": [1, 2, 3, 4, 4], "x": [1.0, 2.0, None, 50.0, 3.0], "y": [0.0, 1.0, 1.0, 2.0, 2.0]})
    items = [
        item("expect_column_values_to_be_unique", column="id"),
        item("expect_column_values_to_be_between", column="x", max_value=10, mostly=0.7),  # 3 of 4 non-null
        item("expect_column_values_to_be_between", column="x", max_value=10, mostly=0.8),
        item(
            "expect_column_pair_values_a_to_be_greater_than_b",
            column_A="x",
            column_B="y",
            ignore_row_if="either_value_is_missing",
        ),
        item("expect_table_row_count_to_equal", value=5),
        item("expect_column_mean_to_be_between", column="y", min_value=1.2, max_value=1.2),
    ]
    outcome = validate_source(frame_source(frame), items, "semantics", result_format="SUMMARY")
    failed = sorted(outcome.flagged)
    assert failed == [0, 2]
    assert outcome.evaluated == len(items)
    assert [f["expectation"] for f in outcome.failures] == [items[0].type, items[2].type]  # suite order
    assert outcome.failures[0]["observed"]["unexpected_count"] == 2


def test_parquet_source_validates_like_the_frame_and_slices_rows(tmp_path, spec):
    frame = synthetic.churn_batch(600, seed=4)
    frame.loc[450:, "tenure_months"] = -1  # only the last rows are broken
    uri = tables.write_parquet(frame, str(tmp_path / "d.parquet"))
    with pytest.raises(DataValidationError) as from_frame:
        validate_batch(frame, spec)
    with parquet_source(uri) as source, pytest.raises(DataValidationError) as from_file:
        assert source.rows == 600 and source.columns == list(frame.columns)
        validate_batch(source, spec)
    assert from_frame.value.report == from_file.value.report
    with parquet_source(uri, 0, 400) as head:
        assert head.rows == 400
        assert validate_batch(head, spec).success
    with parquet_source(uri, 400, 600) as tail, pytest.raises(DataValidationError, match="'unexpected_count': 150"):
        validate_batch(tail, spec)


def test_no_table_sized_object_outlives_a_batch():
    """GX keeps each batch's frame and metrics in its engine; they are dropped between batches."""
    rows = 200_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": np.where(rng.random(rows) < 0.05, np.nan, rng.random(rows)) for i in range(4)})
    items = [item("expect_column_values_to_be_between", column=f"c{i}", min_value=0, max_value=1) for i in range(4)]
    seen: list[int] = []

    import airflow_mlops.core.data.validation.suite as validation

    original = validation._GxSession.run

    def counting_run(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        gc.collect()
        big = [
            o for o in gc.get_objects() if isinstance(o, pd.Series | pd.DataFrame) and len(o) >= rows and o is not frame
        ]
        seen.append(len(big))
        return result

    validation._GxSession.run = counting_run
    try:
        assert validate_source(frame_source(frame), items, "memory", result_format="BOOLEAN_ONLY").success
    finally:
        validation._GxSession.run = original
    assert len(seen) == 4
    assert len(set(seen)) == 1, seen  # what the current batch holds, never an accumulation


def test_gx_does_not_fingerprint_each_batch(monkeypatch):
    from great_expectations.execution_engine import pandas_execution_engine

    def refuse(frame):
        raise AssertionError("GX hashed a whole batch frame")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", refuse)
    frame = synthetic.churn_batch(100, seed=1)
    outcome = validate_source(frame_source(frame), [item("expect_column_to_exist", column="plan")], "nohash")
    assert outcome.success and outcome.evaluated == 1


def test_column_name_checks_see_every_column_in_table_order(tmp_path):
    frame = pd.DataFrame({"id": [1, 2], "b": [1.0, 2.0], "a": ["x", "y"]})
    uri = tables.write_parquet(frame, str(tmp_path / "t.parquet"))
    items = [
        item("expect_table_columns_to_match_ordered_list", column_list=["id", "b", "a"]),
        item("expect_table_columns_to_match_ordered_list", column_list=["id", "a", "b"]),
        item("expect_table_columns_to_match_set", column_set=["id", "a"], exact_match=True),
    ]
    with parquet_source(uri) as source:
        outcome = validate_source(source, items, "names", result_format="SUMMARY")
    assert sorted(outcome.flagged) == [1, 2]
