"""ONNX export: parity with scikit-learn within 1e-4 for the allow-listed estimators, clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.model.packaging import (
    OnnxExportError,
    export_onnx,
    onnx_feeds,
    onnx_parity,
    onnx_session,
    session_input_names,
)
from airflow_mlops.core.model.training import fit
from airflow_mlops.spec import ModelSpec

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
    session = onnx_session(onnx_bytes)
    predicted = session.run(None, onnx_feeds(frame.iloc[1500:1505], regression, session_input_names(session)))[0]
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


def test_derived_features_reach_the_pipeline_and_the_onnx_graph(spec):
    from airflow_mlops.core.model.training import feature_frame
    from airflow_mlops.spec import FeaturesSpec

    features = FeaturesSpec(
        numeric=spec.data.features.numeric,
        categorical=spec.data.features.categorical,
        derived={"charge_per_tenure": "monthly_charges / (tenure_months + 1)", "calls_x2": "support_calls * 2"},
    )
    derived = spec.model_copy(update={"data": spec.data.model_copy(update={"features": features})})
    assert FeaturesSpec(
        numeric=["aa"], derived={"bb": "-aa * 1e-3 + (aa / 2)"}
    ).derived  # exponents in numbers are fine
    train, test = synthetic.churn_batch(2000, seed=1), synthetic.churn_batch(800, seed=2)
    test.loc[0, "tenure_months"] = -1  # a division by zero becomes a missing value, imputed
    inputs = feature_frame(test, derived)
    assert list(inputs.columns[-5:]) == ["charge_per_tenure", "calls_x2", "plan", "region", "payment_method"]
    assert np.isnan(inputs.loc[0, "charge_per_tenure"])
    expected = test["monthly_charges"].iloc[1] / (test["tenure_months"].iloc[1] + 1)
    assert inputs["charge_per_tenure"].iloc[1] == pytest.approx(expected, nan_ok=True)
    model = fit(train, derived, "hist_gradient_boosting", {"max_iter": 40})
    assert "charge_per_tenure" in model.named_steps["preprocess"].transformers_[0][2]
    report = onnx_parity(model, export_onnx(model, derived), test, derived)
    assert report.passed, report.as_dict()


@pytest.mark.parametrize(
    ("derived", "message"),
    [
        ({"tenure_months": "tenure_months * 2"}, "has the name of an input feature"),
        ({"xx": "__import__('os')"}, "not Call in"),
        ({"xx": "tenure_months.values"}, "not Attribute in"),
        ({"xx": "tenure_months ** 9 ** 9"}, "not BinOp in"),
        ({"xx": "tenure_months // 2"}, "not BinOp in"),
        ({"xx": "2"}, "uses no feature"),
        ({"xx": "tenure_months * 1e-3 +"}, "is not an arithmetic expression"),
        ({"xx": "plan * 2"}, "uses ['plan'], which are not numeric features"),
    ],
)
def test_derived_feature_mistakes_are_named(derived, message):
    from airflow_mlops.spec import FeaturesSpec

    with pytest.raises(ValueError) as err:
        FeaturesSpec(numeric=["tenure_months"], categorical=["plan"], derived=derived)
    assert message in str(err.value)


def test_large_regression_targets_are_compared_relative_to_their_magnitude(spec):
    regression = _model_spec(spec, task="regression", estimator="hist_gradient_boosting_regressor")
    frame = synthetic.churn_batch(2000, seed=3)
    frame["churned"] = 250_000.0 + frame["monthly_charges"].fillna(50.0) * 1000.0
    model = fit(frame.iloc[:1500], regression)
    report = onnx_parity(model, export_onnx(model, regression), frame.iloc[1500:], regression)
    assert report.relative and report.passed, report.as_dict()
    assert report.max_abs_diff > 1e-4  # float32 cannot hold 250,000 to 1e-4: an absolute bound would refuse it
    assert report.max_scaled_diff <= 1e-4


def test_a_graph_onnx_runtime_cannot_run_is_an_export_error(spec):
    model = fit(synthetic.churn_batch(500, seed=1), spec, "logistic_regression", {"max_iter": 300})
    with pytest.raises(OnnxExportError, match="ONNX Runtime cannot run the exported graph"):
        onnx_parity(model, b"not an onnx graph", synthetic.churn_batch(50, seed=2), spec)
