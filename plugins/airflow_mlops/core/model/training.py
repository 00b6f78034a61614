"""Splitting, the scikit-learn Pipeline, fitting and metrics.

The trained artifact is one Pipeline: imputation and encoding are fitted together
with the estimator, so what runs at prediction time is exactly what ran in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from airflow_mlops.core.data.cleaning import normalize_columns
from airflow_mlops.core.model.estimators import is_tree_based, resolve_estimator
from airflow_mlops.core.model.features import MISSING_CATEGORY, InputContract, derived_values
from airflow_mlops.spec import PipelineSpec


def feature_frame(frame: pd.DataFrame, spec: PipelineSpec | InputContract) -> pd.DataFrame:
    """The model's input columns, typed the way the Pipeline expects them, derived features added.

    ``spec`` may be the contract itself (what a registered model carries: ``core.model.raw_inputs``).
    """
    contract = spec if isinstance(spec, InputContract) else InputContract.from_spec(spec)
    missing = [c for c in contract.inputs if c not in frame.columns]
    if missing:
        raise ValueError(f"input is missing feature columns {missing}")
    features = normalize_columns(frame[list(contract.inputs)].copy(), contract.normalize)
    for column in contract.numeric:
        try:
            features[column] = pd.to_numeric(features[column], errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"numeric feature '{column}' has non-numeric values: {exc}") from None
    for name, tree in contract.derived_trees():
        features[name] = derived_values(tree, features, len(features))
    for column in contract.categorical:
        # Text, with "" for missing (None, NaN, pd.NA alike): the one missing marker both
        # scikit-learn's imputer and its ONNX conversion (string tensors cannot hold None) understand.
        values = features[column].astype("object")
        features[column] = values.where(values.notna(), MISSING_CATEGORY).astype(str)
    return features[list(contract.model_inputs)]


def label_array(frame: pd.DataFrame, spec: PipelineSpec) -> np.ndarray:
    """The label as a plain NumPy array (nullable pandas dtypes become their NumPy twins)."""
    labels = frame[spec.data.label]
    if labels.isna().any():
        raise ValueError(f"label column '{spec.data.label}' has {int(labels.isna().sum())} missing values")
    if isinstance(labels.dtype, pd.api.extensions.ExtensionDtype) and hasattr(labels.dtype, "numpy_dtype"):
        return labels.to_numpy(dtype=labels.dtype.numpy_dtype)
    return labels.to_numpy()


def _impute_rule(spec: PipelineSpec, column: str, categorical: bool) -> tuple[str, Any]:
    rule = spec.cleaning.impute.get(column)
    if rule is None:
        return ("constant", "__missing__") if categorical else ("median", None)
    return rule.strategy, rule.fill_value


def _grouped(spec: PipelineSpec, columns: list[str], categorical: bool) -> dict[tuple[str, Any], list[str]]:
    """Columns grouped by imputation rule: one imputer per rule keeps the Pipeline small."""
    groups: dict[tuple[str, Any], list[str]] = {}
    for column in columns:
        groups.setdefault(_impute_rule(spec, column, categorical), []).append(column)
    return groups


def _scaler(spec: PipelineSpec, estimator: BaseEstimator) -> list[tuple[str, Any]]:
    kind = spec.model.preprocessing.scale
    if kind == "auto":
        kind = "none" if is_tree_based(type(estimator)) else "standard"
    if kind == "none":
        return []
    return [("scale", StandardScaler() if kind == "standard" else MinMaxScaler())]


def _encoder(spec: PipelineSpec) -> Any:
    if spec.model.preprocessing.encoding == "ordinal":
        # Categories unseen in training map to -1, like a category of their own.
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    return OneHotEncoder(handle_unknown="ignore")


def make_estimator(spec: PipelineSpec, estimator: str, params: dict[str, Any]) -> BaseEstimator:
    """The estimator of a trial, checked against the spec's task; seeded unless params set a seed."""
    from sklearn.base import is_classifier, is_regressor

    estimator_cls = resolve_estimator(estimator)
    try:
        instance = estimator_cls(**params)
        if "random_state" in instance.get_params() and "random_state" not in params:
            instance.set_params(random_state=spec.model.seed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid params for {estimator_cls.__name__} ({estimator}): {exc}") from exc
    fits_task = is_regressor(instance) if spec.model.task == "regression" else is_classifier(instance)
    if not fits_task:
        raise ValueError(f"{estimator_cls.__name__} ({estimator}) is not a {spec.model.task} estimator")
    return instance


def build_pipeline(spec: PipelineSpec, estimator: str | None = None, params: dict[str, Any] | None = None) -> Pipeline:
    """Imputation per ``cleaning.impute`` (default: median for numeric, '__missing__' for
    categorical), scaling and encoding per ``model.preprocessing``, then the estimator
    (the spec's single one, or a trial's): fitted and served as one."""
    if estimator is None:
        (only,) = spec.model.candidate_list()[:1]
        estimator, params = only.estimator, only.params
    model = make_estimator(spec, estimator, params or {})
    steps = []
    for index, ((strategy, fill), columns) in enumerate(
        _grouped(spec, spec.data.features.model_numeric, False).items()
    ):
        imputer = SimpleImputer(strategy=strategy, fill_value=fill)
        steps.append((f"numeric_{index}", Pipeline([("impute", imputer), *_scaler(spec, model)]), columns))
    for index, ((strategy, fill), columns) in enumerate(_grouped(spec, spec.data.features.categorical, True).items()):
        imputer = SimpleImputer(strategy=strategy, fill_value=fill, missing_values=MISSING_CATEGORY)
        steps.append((f"categorical_{index}", Pipeline([("impute", imputer), ("encode", _encoder(spec))]), columns))
    preprocess = ColumnTransformer(steps)
    return Pipeline([("preprocess", preprocess), ("estimator", model)])


def fit(
    frame: pd.DataFrame, spec: PipelineSpec, estimator: str | None = None, params: dict[str, Any] | None = None
) -> Pipeline:
    pipeline = build_pipeline(spec, estimator, params)
    pipeline.fit(feature_frame(frame, spec), label_array(frame, spec))
    return pipeline


def evaluate(model: Any, frame: pd.DataFrame, spec: PipelineSpec) -> dict[str, float]:
    """Metrics of ``model`` on ``frame`` (the held-out test split)."""
    features = feature_frame(frame, spec)
    truth = label_array(frame, spec)
    predicted = model.predict(features)
    if spec.model.task == "regression":
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(truth, predicted))),
            "mae": float(skm.mean_absolute_error(truth, predicted)),
            "r2": float(skm.r2_score(truth, predicted)),
        }
    classes = list(getattr(model, "classes_", sorted(set(truth))))
    binary = len(classes) == 2
    # The positive class is the model's second class, whatever the labels are ("yes"/"no", 0/1);
    # with more classes, precision, recall and f1 are macro averages.
    averaging: dict[str, Any] = {"average": "binary", "pos_label": classes[-1]} if binary else {"average": "macro"}
    result = {
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "precision": float(skm.precision_score(truth, predicted, zero_division=0, **averaging)),
        "recall": float(skm.recall_score(truth, predicted, zero_division=0, **averaging)),
        "f1": float(skm.f1_score(truth, predicted, zero_division=0, **averaging)),
    }
    if hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(features)
        if binary:
            result["roc_auc"] = float(skm.roc_auc_score(truth == classes[1], probabilities[:, 1]))
        else:
            result["roc_auc"] = float(skm.roc_auc_score(truth, probabilities, multi_class="ovr", labels=classes))
        result["log_loss"] = float(skm.log_loss(truth, probabilities, labels=classes))
    return result
