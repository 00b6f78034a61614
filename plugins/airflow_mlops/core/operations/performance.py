"""Performance on delayed labels: the champion's logged predictions scored against the labels that
arrived, and whether its metric decayed."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import numpy as np

from airflow_mlops.core.contracts import PerformanceCheck, PerformanceSummary
from airflow_mlops.core.operations.prediction_log.labels import labeled_predictions
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)


def promotion_day(version: Any) -> dt.date | None:
    """The (UTC) day ``version`` became champion: its ``promotion`` tag, else its registration."""
    record = (getattr(version, "tags", None) or {}).get("promotion")
    if record:
        try:
            at = dt.datetime.fromisoformat(str(json.loads(record)["at"]))
            return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).date()
        except (ValueError, TypeError, KeyError):
            logger.warning("unreadable promotion tag on v%s: %r", getattr(version, "version", "?"), record)
    created = getattr(version, "creation_timestamp", None)
    if created:
        return dt.datetime.fromtimestamp(int(created) / 1000, dt.UTC).date()
    return None


class _LoggedPredictions:
    """The champion's logged outputs, shaped like a model for ``training.evaluate``."""

    def __init__(self, joined: Any, classes: list[Any] | None) -> None:
        self._joined = joined
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def predict(self, features: Any) -> Any:
        return self._joined["prediction"].to_numpy()


class _LoggedScores(_LoggedPredictions):
    """... and the positive class's logged score, for roc_auc and log_loss (binary classifiers)."""

    def predict_proba(self, features: Any) -> Any:
        score = self._joined["score"].to_numpy(dtype="float64")
        return np.column_stack([1.0 - score, score])


class _LoggedProbabilities(_LoggedPredictions):
    """... and every class's logged probability (models of more than two classes), in ``classes`` order."""

    def predict_proba(self, features: Any) -> Any:
        labels = [str(c) for c in self.classes_]
        return np.asarray([[dict(row)[label] for label in labels] for row in self._joined["probabilities"]])


def labeled_metrics(joined: Any, spec: PipelineSpec, model: Any) -> tuple[dict[str, float], int]:
    """The task's metrics (``training.evaluate``) of the logged predictions against the labels,
    and how many labeled predictions they were computed on (labels that are no value of the
    predictions' type, e.g. text among numbers, are left out)."""
    import pandas as pd

    from airflow_mlops.core.model.training import evaluate

    truth = joined["label"]
    predicted = joined["prediction"]
    if pd.api.types.is_numeric_dtype(predicted) and not pd.api.types.is_numeric_dtype(truth):
        truth = pd.to_numeric(truth, errors="coerce")  # e.g. labels "0"/"1" read as text
    elif not pd.api.types.is_numeric_dtype(predicted) and pd.api.types.is_numeric_dtype(truth):
        truth = truth.astype(str)
    joined = joined.assign(label=truth)[truth.notna().to_numpy()].reset_index(drop=True)
    if joined.empty:
        return {}, 0
    # evaluate() takes the model's inputs; the logged outputs stand in for the model, so none are needed.
    frame = pd.DataFrame({column: np.full(len(joined), np.nan) for column in spec.data.features.all})
    frame[spec.data.label] = joined["label"].to_numpy()
    if spec.model.task == "regression":
        return evaluate(_LoggedPredictions(joined, None), frame, spec), len(joined)
    classes = list(getattr(model, "classes_", sorted(set(frame[spec.data.label]) | set(joined["prediction"]))))
    stand_in = _LoggedPredictions(joined, classes)
    if len(classes) == 2 and joined["score"].notna().all():
        stand_in = _LoggedScores(joined, classes)
    elif len(classes) > 2 and "probabilities" in joined.columns and joined["probabilities"].notna().all():
        stand_in = _LoggedProbabilities(joined, classes)
    try:
        return evaluate(stand_in, frame, spec), len(joined)
    except ValueError as exc:  # e.g. roc_auc with one class among the labels
        logger.warning("score-based metrics undefined on the labeled predictions: %s", exc)
        return evaluate(_LoggedPredictions(joined, classes), frame, spec), len(joined)


def labeled_window(spec: PipelineSpec, current: Any) -> tuple[Any, list[str]]:
    """The champion's logged predictions since its promotion day that a delayed label has arrived
    for, with the ``evaluation.slices`` columns (``labeled_predictions``); None without labels."""
    slices = tuple(spec.evaluation.slices)
    return labeled_predictions(spec, str(current.version), promotion_day(current), columns=slices)


def assess_performance(
    spec: PipelineSpec, current: Any, model: Any, window: tuple[Any, list[str]] | None = None
) -> PerformanceCheck | None:
    """Metrics of the champion on its delayed labels vs its own test metrics; None without labels.

    Decay needs ``monitoring.min_labeled_rows`` labeled predictions (those the metrics use) and
    the promotion metric worse than the champion's ``test_<metric>`` tag by more than
    ``monitoring.max_metric_drop``. Only predictions logged since the champion's promotion day
    are read. ``window``: what ``labeled_window`` returned, when the caller already read it.
    """
    joined, unusable = window if window is not None else labeled_window(spec, current)
    if joined is None:
        return None
    metric = spec.promotion.metric
    minimum, allowed = spec.monitoring.min_labeled_rows, spec.monitoring.max_metric_drop
    metrics, labeled = labeled_metrics(joined, spec, model) if len(joined) else ({}, 0)
    tag = current.tags.get(f"test_{metric}")
    test_value = float(tag) if tag not in (None, "") else None
    value = metrics.get(metric)
    higher = spec.promotion.higher_is_better
    drop = None
    if value is not None and test_value is not None:
        drop = (test_value - value) if higher else (value - test_value)
    if labeled < minimum:
        decision, decayed = f"no decision: {labeled} labeled prediction(s), fewer than {minimum}", False
    elif value is None or test_value is None or drop is None or not np.isfinite(drop):
        missing = "the labeled predictions" if value is None else f"the champion's test_{metric} tag"
        decision, decayed = f"no decision: {metric} is not available for {missing}", False
    else:
        decayed = drop > allowed
        worse = f"{drop:.4f} worse than" if drop > 0 else "not worse than"
        decision = (
            f"{metric} {value:.4f} on {labeled} labeled predictions is {worse} the champion's test value "
            f"{test_value:.4f} (allowed drop {allowed:g})"
        )
    return {
        "metric": metric,
        "higher_is_better": higher,
        "value": value,
        "test_value": test_value,
        "drop": drop,
        "max_metric_drop": allowed,
        "labeled_rows": labeled,
        "min_labeled_rows": minimum,
        "metrics": metrics,
        "decayed": decayed,
        "decision": decision,
        "unusable_label_files": unusable,
    }


def performance_summary(performance: PerformanceCheck | None) -> PerformanceSummary | None:
    """What of the performance check travels in XCom and the drift event (small, no file lists)."""
    if performance is None:
        return None
    return {
        "metric": performance["metric"],
        "value": performance["value"],
        "test_value": performance["test_value"],
        "drop": performance["drop"],
        "max_metric_drop": performance["max_metric_drop"],
        "labeled_rows": performance["labeled_rows"],
        "min_labeled_rows": performance["min_labeled_rows"],
        "decayed": performance["decayed"],
        "decision": performance["decision"],
        "metrics": performance["metrics"],
    }
