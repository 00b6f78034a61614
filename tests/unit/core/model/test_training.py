"""Training: the allow-list, the key-hash split, the Pipeline and its metrics."""

from __future__ import annotations

import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.splitting import split_frame as split_parts
from airflow_mlops.core.model.training import (
    build_pipeline,
    evaluate,
    feature_frame,
    fit,
    resolve_estimator,
)

pytestmark = pytest.mark.unit


def _train_test(frame, spec):
    parts = split_parts(frame, spec)
    return parts["train"], parts["test"]


def test_allow_list_names_and_explicit_dotted_paths_resolve():
    assert resolve_estimator("logistic_regression").__name__ == "LogisticRegression"
    assert resolve_estimator("sklearn.tree.DecisionTreeClassifier").__name__ == "DecisionTreeClassifier"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("magic", "unknown estimator 'magic'"),
        ("os.path.join", "not a scikit-learn estimator"),
        ("sklearn.nope.Thing", "cannot import estimator"),
    ],
)
def test_bad_estimators_are_refused(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_estimator(name)


def test_pipeline_imputes_encodes_and_predicts_on_rows_with_missing_values(spec):
    train, test = _train_test(synthetic.churn_batch(3000, seed=1), spec)
    model = fit(train, spec)
    assert [name for name, _ in model.steps] == ["preprocess", "estimator"]
    assert [name for name, _, _ in model.named_steps["preprocess"].transformers] == ["numeric_0", "categorical_0"]
    metrics = evaluate(model, test, spec)
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert 0 < metrics["precision"] < 1 and 0 < metrics["recall"] < 1
    assert metrics["roc_auc"] > 0.7  # the generator's label has real signal
    raw = test.head(3).copy()
    raw["plan"] = ["never-seen", None, "basic"]
    raw["usage_gb"] = None
    unseen = feature_frame(raw, spec)  # how every caller (scoring, serving) feeds the Pipeline
    assert unseen["plan"].tolist() == ["never-seen", "", "basic"]  # "" marks a missing category
    assert len(model.predict(unseen)) == 3


def test_same_data_spec_and_seed_give_identical_predictions(spec):
    train, test = _train_test(synthetic.churn_batch(2000, seed=1), spec)
    features = feature_frame(test, spec)
    first = fit(train, spec).predict_proba(features)
    second = fit(train, spec).predict_proba(features)
    assert (first == second).all()


def test_bad_params_and_missing_labels_are_named(spec):
    with pytest.raises(ValueError, match=r"invalid params for HistGradientBoostingClassifier"):
        build_pipeline(spec, "hist_gradient_boosting", {"depth": 3})
    with pytest.raises(ValueError, match=r"Ridge \(ridge\) is not a classification estimator"):
        build_pipeline(spec, "ridge", {})
    frame = synthetic.churn_batch(200, seed=1)
    frame["churned"] = frame["churned"].astype("float64")
    frame.loc[:2, "churned"] = None
    with pytest.raises(ValueError, match="label column 'churned' has 3 missing values"):
        fit(frame, spec)


def test_regression_metrics(spec):
    frame = synthetic.churn_batch(1500, seed=1)
    reg = spec.model_copy(
        update={
            "model": spec.model.model_copy(
                update={"task": "regression", "estimator": "ridge", "params": {}, "candidates": []}
            )
        }
    )
    reg_frame = frame.assign(churned=frame["monthly_charges"].fillna(40.0))
    train, test = _train_test(reg_frame, reg)
    model = fit(train, reg)
    assert set(evaluate(model, test, reg)) == {"rmse", "mae", "r2"}


def test_string_labels_are_evaluated_with_the_models_positive_class(spec):
    frame = synthetic.churn_batch(2000, seed=1)
    frame["churned"] = frame["churned"].map({0: "stays", 1: "leaves"})
    train, test = _train_test(frame, spec)
    metrics = evaluate(fit(train, spec), test, spec)
    assert 0.0 < metrics["f1"] < 1.0 and metrics["roc_auc"] > 0.6


def test_non_numeric_value_in_a_numeric_feature_is_named(spec):
    frame = synthetic.churn_batch(100, seed=1)
    frame["usage_gb"] = frame["usage_gb"].astype("object")
    frame.loc[3, "usage_gb"] = "lots"
    with pytest.raises(ValueError, match="numeric feature 'usage_gb' has non-numeric values"):
        feature_frame(frame, spec)
