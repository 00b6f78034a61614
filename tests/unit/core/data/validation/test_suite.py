"""Great Expectations validation: failures are named with observed vs expected values."""

from __future__ import annotations

import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.validation.suite import DataValidationError, validate_batch, validate_frame
from airflow_mlops.spec import ExpectationSpec

pytestmark = pytest.mark.unit


def test_clean_generated_batch_passes_the_example_suite(spec):
    outcome = validate_batch(synthetic.churn_batch(1000, seed=1), spec)
    assert outcome.success
    assert outcome.evaluated == len(spec.validation.expectations) + 10  # 9 columns exist + row count


def test_out_of_range_values_fail_with_column_and_observed_values(spec):
    frame = synthetic.churn_batch(500, seed=1)
    frame.loc[:4, "tenure_months"] = -5
    with pytest.raises(DataValidationError) as err:
        validate_batch(frame, spec)
    message = str(err.value)
    assert "expect_column_values_to_be_between on column 'tenure_months'" in message
    assert "'min_value': 0" in message and "'unexpected_count': 5" in message
    assert err.value.report["failures"][0]["column"] == "tenure_months"


def test_missing_required_column_is_named(spec):
    frame = synthetic.churn_batch(500, seed=1).drop(columns=["plan"])
    with pytest.raises(DataValidationError, match="expect_column_to_exist on column 'plan'"):
        validate_batch(frame, spec)


def test_label_is_not_required_for_scoring_batches(spec):
    frame = synthetic.churn_batch(500, seed=1).drop(columns=["churned"])
    assert validate_batch(frame, spec, require_label=False).success
    with pytest.raises(DataValidationError, match="column 'churned'"):
        validate_batch(frame, spec)


def test_too_few_rows_fails(spec):
    with pytest.raises(DataValidationError, match="expect_table_row_count_to_be_between"):
        validate_batch(synthetic.churn_batch(20, seed=1), spec)


def test_warning_severity_is_reported_but_does_not_fail():
    frame = synthetic.churn_batch(200, seed=1)
    frame["usage_gb"] = None
    items = [
        ExpectationSpec(type="expect_column_values_to_not_be_null", kwargs={"column": "usage_gb"}, severity="warning")
    ]
    outcome = validate_frame(frame, items, suite_name="warn")
    assert outcome.success and outcome.warnings[0]["column"] == "usage_gb"


def test_unknown_expectation_and_bad_arguments_are_named():
    frame = synthetic.churn_batch(50, seed=1)
    with pytest.raises(ValueError, match="unknown Great Expectations expectation 'expect_magic'"):
        validate_frame(frame, [ExpectationSpec(type="expect_magic")], suite_name="x")
    with pytest.raises(ValueError, match="invalid arguments for expect_column_values_to_be_between"):
        validate_frame(
            frame,
            [ExpectationSpec(type="expect_column_values_to_be_between", kwargs={"colum": "plan"})],
            suite_name="x",
        )


def test_an_expectation_on_a_column_the_data_lacks_says_so():
    frame = synthetic.churn_batch(50, seed=1).drop(columns=["region"])
    items = [ExpectationSpec(type="expect_column_values_to_be_in_set", kwargs={"column": "region", "value_set": ["x"]})]
    outcome = validate_frame(frame, items, suite_name="absent")
    assert outcome.failures[0]["observed"]["error"] == "column(s) ['region'] not in the data"
