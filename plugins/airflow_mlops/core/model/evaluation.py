"""What an evaluation shows besides headline metrics: metrics per slice, feature importance, plots.

Everything is computed on the hold-out test split. Plots are PNG files (matplotlib, Agg
backend, no display needed) that the evaluate stage logs to the candidate's MLflow run.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.model.training import evaluate, feature_frame, label_array
from airflow_mlops.spec import PipelineSpec

MAX_SLICE_VALUES = 50  # a slice column with more values reports its most frequent ones
IMPORTANCE_ROWS = 2000  # permutation importance runs on a seeded sample of this many test rows


def slice_metrics(model: Any, frame: pd.DataFrame, spec: PipelineSpec) -> dict[str, dict[str, dict[str, Any]]]:
    """``{column: {value: {"rows": n, metric: value, ...}}}`` for each ``evaluation.slices`` column.

    A metric that cannot be computed on a slice (ROC AUC where only one class occurs) is
    left out of that slice rather than reported as a number it is not.
    """
    import math

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column in spec.evaluation.slices:
        values = frame[column].astype("object").where(frame[column].notna(), "(missing)")
        per_value: dict[str, dict[str, Any]] = {}
        for value in values.value_counts().index[:MAX_SLICE_VALUES]:
            part = frame[values == value]
            row: dict[str, Any] = {"rows": len(part)}
            try:
                computed = evaluate(model, part, spec)
            except ValueError:  # e.g. a single class in this slice: report what can be computed
                computed = _robust_metrics(model, part, spec)
            row.update({k: v for k, v in computed.items() if math.isfinite(v)})
            per_value[str(value)] = row
        out[column] = per_value
    return out


def _robust_metrics(model: Any, part: pd.DataFrame, spec: PipelineSpec) -> dict[str, float]:
    from sklearn import metrics as skm

    truth = label_array(part, spec)
    predicted = model.predict(feature_frame(part, spec))
    if spec.model.task == "regression":
        return {"mae": float(skm.mean_absolute_error(truth, predicted))}
    return {"accuracy": float(skm.accuracy_score(truth, predicted))}


def permutation_importance(model: Any, frame: pd.DataFrame, spec: PipelineSpec) -> dict[str, float]:
    """Mean score drop when each model input column is shuffled (scorer: see ``_scorer_name``)."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    sample = frame.sample(n=min(len(frame), IMPORTANCE_ROWS), random_state=spec.model.seed)
    scoring = _scorer_name(spec)
    result = sk_permutation_importance(
        model,
        feature_frame(sample, spec),
        label_array(sample, spec),
        scoring=scoring,
        n_repeats=3,
        random_state=spec.model.seed,
    )
    pairs = zip(spec.data.features.model_inputs, result.importances_mean, strict=True)
    return dict(sorted(((name, float(value)) for name, value in pairs), key=lambda item: -item[1]))


def _scorer_name(spec: PipelineSpec) -> str:
    """The selection metric's scikit-learn scorer where one exists: roc_auc, log_loss, f1
    (macro); accuracy for the other classification metrics; r2 for every regression metric."""
    if spec.model.task == "regression":
        return "r2"
    return {"roc_auc": "roc_auc_ovr", "log_loss": "neg_log_loss", "f1": "f1_macro"}.get(
        spec.selection_metric, "accuracy"
    )


def class_label(value: Any) -> str:
    """A class as a person writes it: ``1`` for ``np.int64(1)``, ``yes`` for ``np.str_('yes')``."""
    return str(value.item() if isinstance(value, np.generic) else value)


def render_plots(
    model: Any, frame: pd.DataFrame, spec: PipelineSpec, importance: dict[str, float], folder: str
) -> list[str]:
    """Write the evaluation plots as PNG files into ``folder``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    features = feature_frame(frame, spec)
    truth = label_array(frame, spec)
    paths: list[str] = []

    def save(figure: Any, name: str) -> None:
        path = os.path.join(folder, name)
        figure.tight_layout()
        figure.savefig(path, dpi=90)
        plt.close(figure)
        paths.append(path)

    if spec.model.task == "classification":
        predicted = model.predict(features)
        figure, axis = plt.subplots(figsize=(5, 4))
        ConfusionMatrixDisplay.from_predictions(truth, predicted, ax=axis, colorbar=False)
        axis.set_title("Confusion matrix (test split)")
        save(figure, "confusion_matrix.png")
        classes = list(getattr(model, "classes_", []))
        if len(classes) == 2 and hasattr(model, "predict_proba"):
            positive = model.predict_proba(features)[:, 1]
            for display, name, title in (
                (RocCurveDisplay, "roc_curve.png", "ROC curve"),
                (PrecisionRecallDisplay, "pr_curve.png", "Precision-recall curve"),
            ):
                figure, axis = plt.subplots(figsize=(5, 4))
                display.from_predictions(truth == classes[1], positive, ax=axis)
                axis.set_title(f"{title} (positive class {class_label(classes[1])})")
                save(figure, name)
    else:
        predicted = np.asarray(model.predict(features), dtype=float)
        residuals = np.asarray(truth, dtype=float) - predicted
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
        left.scatter(predicted, residuals, s=4, alpha=0.4)
        left.axhline(0.0, color="black", linewidth=0.8)
        left.set_xlabel("predicted")
        left.set_ylabel("residual (actual - predicted)")
        left.set_title("Residuals")
        right.scatter(truth, predicted, s=4, alpha=0.4)
        low, high = float(np.min(truth)), float(np.max(truth))
        right.plot([low, high], [low, high], color="black", linewidth=0.8)
        right.set_xlabel("actual")
        right.set_ylabel("predicted")
        right.set_title("Predicted vs actual")
        save(figure, "residuals.png")

    if importance:
        names = list(importance)[::-1]
        figure, axis = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
        axis.barh(names, [importance[n] for n in names])
        axis.set_xlabel(f"mean score drop when shuffled ({_scorer_name(spec)})")
        axis.set_title("Permutation feature importance (test split)")
        save(figure, "feature_importance.png")
    return paths
