"""Expectations inferred from a reference profile catch batches unlike the training data."""

from __future__ import annotations

import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.profiling import profile_frame
from airflow_mlops.core.data.validation.inferred import infer_expectations
from airflow_mlops.core.data.validation.suite import DataValidationError, validate_batch
from airflow_mlops.spec import InferenceSpec

pytestmark = pytest.mark.unit


def _inferring(spec, **rule):
    validation = spec.validation.model_copy(update={"infer": InferenceSpec(enabled=True, **rule)})
    return spec.model_copy(update={"validation": validation})


def test_inferred_suite_covers_bounds_categories_nulls_and_rows(spec):
    profile = profile_frame(synthetic.churn_batch(3000, seed=1))
    inferred = infer_expectations(profile, _inferring(spec))
    kinds = {(item.type, item.kwargs.get("column")) for item in inferred}
    assert ("expect_column_values_to_be_between", "usage_gb") in kinds
    assert ("expect_column_values_to_be_in_set", "plan") in kinds
    assert ("expect_column_values_to_not_be_null", "monthly_charges") in kinds
    assert ("expect_table_row_count_to_be_between", None) in kinds
    assert all(item.severity == "warning" for item in inferred)
    plan = next(i for i in inferred if i.kwargs.get("column") == "plan")
    assert sorted(plan.kwargs["value_set"]) == ["basic", "premium", "standard"]


def test_a_batch_like_the_reference_passes_and_a_shifted_one_is_caught(spec):
    rule = _inferring(spec, severity="error")
    inferred = infer_expectations(profile_frame(synthetic.churn_batch(3000, seed=1)), rule)
    assert validate_batch(synthetic.churn_batch(3000, seed=2), rule, extra=inferred).success
    shifted = synthetic.churn_batch(3000, seed=2, drift=1.0)
    with pytest.raises(DataValidationError, match="expect_column_values_to_be_between on column 'usage_gb'"):
        validate_batch(shifted, rule, extra=inferred)


def test_warning_severity_reports_without_stopping(spec):
    rule = _inferring(spec)
    inferred = infer_expectations(profile_frame(synthetic.churn_batch(3000, seed=1)), rule)
    outcome = validate_batch(synthetic.churn_batch(3000, seed=2, drift=1.0), rule, extra=inferred)
    assert outcome.success and any(w["column"] == "usage_gb" for w in outcome.warnings)
