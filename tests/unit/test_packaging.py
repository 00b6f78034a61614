"""ONNX export: parity with scikit-learn within 1e-4 for the allow-listed estimators, clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.core import synthetic
from airflow_mlops.core.packaging import OnnxExportError, export_onnx, onnx_feeds, onnx_parity, onnx_session
from airflow_mlops.core.spec import ModelSpec
from airflow_mlops.core.training import fit

pytestmark = pytest.mark.unit


def _model_spec(spec, **model):
    return spec.model_copy(update={"model": ModelSpec(**model)})


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        ("hist_gradient_boosting", {"max_iter": 60}),
        ("logistic_regression", {"max_iter": 500}),
        ("random_forest", {"n_estimators": 15}),
        ("gradient_boosting", {"n_estimators": 30}),
    ],
)
def test_classifiers_convert_with_parity(spec, estimator, params):
    train, test = synthetic.churn_batch(2500, seed=1), synthetic.churn_batch(1500, seed=2)
    test.loc[:20, "plan"] = None  # missing categories and numbers travel as "" and NaN
    test.loc[:20, "usage_gb"] = np.nan
    model = fit(train, spec, estimator, params)
    report = onnx_parity(model, export_onnx(model, spec), test, spec)
    assert report.passed and report.rows == 1500 and report.labels_agree == 1.0, report.as_dict()


@pytest.mark.parametrize("estimator", ["ridge", "hist_gradient_boosting_regressor", "random_forest_regressor"])
def test_regressors_convert_with_parity(spec, estimator):
    regression = _model_spec(spec, task="regression", estimator=estimator)
    frame = synthetic.churn_batch(2000, seed=3)
    frame["churned"] = frame["monthly_charges"].fillna(50.0) * 1.5 + frame["tenure_months"]
    model = fit(frame.iloc[:1500], regression)
    onnx_bytes = export_onnx(model, regression)
    report = onnx_parity(model, onnx_bytes, frame.iloc[1500:], regression)
    assert report.passed, report.as_dict()
    predicted = onnx_session(onnx_bytes).run(None, onnx_feeds(frame.iloc[1500:1505], regression))[0]
    assert predicted.shape[0] == 5


def test_a_pipeline_without_an_onnx_form_is_named(spec):
    model = fit(synthetic.churn_batch(400, seed=1), spec, "sklearn.semi_supervised.LabelSpreading", {})
    with pytest.raises(OnnxExportError, match="cannot convert LabelSpreading to ONNX"):
        export_onnx(model, spec)


def test_a_parity_gap_is_reported_not_hidden(spec):
    train, test = synthetic.churn_batch(1500, seed=1), synthetic.churn_batch(500, seed=2)
    model = fit(train, spec, "logistic_regression", {"max_iter": 500})
    other = fit(train.assign(churned=1 - train["churned"]), spec, "logistic_regression", {"max_iter": 500})
    report = onnx_parity(model, export_onnx(other, spec), test, spec)  # the ONNX file of another model
    assert not report.passed and report.max_abs_diff > 0.1 and report.rows_over_tolerance > 0
