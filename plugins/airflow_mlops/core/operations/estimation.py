"""Performance without labels: the champion's metric estimated from its logged scores (CBPE).

Confidence-based performance estimation (the method NannyML calls CBPE), written on numpy: a
calibrated score ``p`` says the row is positive with probability ``p``, so a predicted-positive
row adds ``p`` expected true positives and ``1 - p`` expected false positives, a predicted-negative
row ``p`` expected false negatives and ``1 - p`` expected true negatives. The expected confusion
matrix gives expected accuracy, precision, recall and F1; the expected ROC curve (expected true-
and false-positive rates at every score threshold, rows ranked by their raw score) gives the
expected ROC AUC; the expected log loss is the calibrated probabilities' cross-entropy with the
raw ones. More than two classes: the same per class, one against the rest, macro averaged (ROC
AUC one-vs-rest, as the evaluation computes it), accuracy the mean calibrated probability of the
predicted class.

Assumptions, stated in docs/concepts.md: the scores are calibrated (checked at evaluation,
``core.model.calibration``; an isotonic map fitted there may be applied) and P(label | features)
has not changed since (covariate shift only; concept drift is invisible to any estimate made
without labels). Pure functions over arrays and the logged frame; monitoring wires them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from airflow_mlops.core.contracts import EstimateCheck

ESTIMABLE = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
_EPS = float(np.finfo("float64").eps)


def _ratio(top: float, bottom: float) -> float:
    return float(top / bottom) if bottom > 0 else 0.0  # zero_division=0, like the evaluation


def expected_confusion(calibrated: np.ndarray, predicted_positive: np.ndarray) -> dict[str, float]:
    """Expected TP, FP, TN, FN of predictions ``predicted_positive`` whose calibrated P(positive) is ``calibrated``."""
    p = np.asarray(calibrated, dtype="float64")
    positive = np.asarray(predicted_positive, dtype=bool)
    return {
        "tp": float(p[positive].sum()),
        "fp": float((1.0 - p[positive]).sum()),
        "tn": float((1.0 - p[~positive]).sum()),
        "fn": float(p[~positive].sum()),
    }


def confusion_metrics(confusion: dict[str, float]) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of a (possibly expected, fractional) confusion matrix."""
    tp, fp, tn, fn = (confusion[k] for k in ("tp", "fp", "tn", "fn"))
    return {
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def expected_roc_auc(ranking: np.ndarray, calibrated: np.ndarray) -> float:
    """The area under the expected ROC curve: rows ranked by ``ranking`` (the raw score; tied
    scores move together), each adding ``calibrated`` expected positives and ``1 - calibrated``
    expected negatives. NaN when the expected positives or negatives are zero."""
    ranking = np.asarray(ranking, dtype="float64")
    order = np.argsort(-ranking, kind="stable")
    ranked, p = ranking[order], np.asarray(calibrated, dtype="float64")[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1] if len(ranked) else np.array([], dtype=int)
    tp, fp = np.cumsum(p)[ends], np.cumsum(1.0 - p)[ends]
    if not len(tp) or tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]))


def _log_loss(calibrated: np.ndarray, raw: np.ndarray) -> float:
    """Expected log loss (rows x classes): the calibrated probabilities' cross-entropy with the raw ones."""
    raw = np.clip(np.asarray(raw, dtype="float64"), _EPS, 1.0)
    raw = raw / raw.sum(axis=1, keepdims=True)
    return float(np.mean(-(np.asarray(calibrated) * np.log(raw)).sum(axis=1)))


def expected_metrics(calibrated: np.ndarray, raw: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The estimable metrics of predictions ``predicted`` (class indexes) whose raw probabilities
    (rows x classes, the model's) are ``raw`` and calibrated ones ``calibrated``.

    Two classes: of the second class as positive, like the evaluation; more: macro averages."""
    calibrated, raw = np.asarray(calibrated, dtype="float64"), np.asarray(raw, dtype="float64")
    predicted = np.asarray(predicted, dtype=int)
    if calibrated.shape[1] == 2:
        result = confusion_metrics(expected_confusion(calibrated[:, 1], predicted == 1))
        result["roc_auc"] = expected_roc_auc(raw[:, 1], calibrated[:, 1])
    else:
        per_class = [
            confusion_metrics(expected_confusion(calibrated[:, k], predicted == k)) for k in range(calibrated.shape[1])
        ]
        result = {key: float(np.mean([row[key] for row in per_class])) for key in ("precision", "recall", "f1")}
        result["accuracy"] = float(np.mean(calibrated[np.arange(len(predicted)), predicted])) if len(predicted) else 0.0
        result["roc_auc"] = float(np.mean([expected_roc_auc(raw[:, k], calibrated[:, k]) for k in range(raw.shape[1])]))
    result["log_loss"] = _log_loss(calibrated, raw)
    return {key: value for key, value in result.items() if np.isfinite(value)}


def logged_probabilities(frame: Any, classes: list[str]) -> tuple[np.ndarray, np.ndarray] | str:
    """The raw probabilities (rows x classes) and predicted class indexes of logged predictions
    (``score``: P(second class) of two; ``probabilities``: class -> probability of more), or why
    they cannot be read. ``classes`` are the model's classes as text, in its order."""
    index = {label: k for k, label in enumerate(classes)}
    predicted = frame["prediction"].map(lambda value: index.get(_text(value), -1)).to_numpy(dtype=int)
    if (predicted < 0).any():
        return f"{int((predicted < 0).sum())} logged prediction(s) are none of the model's classes {classes}"
    if len(classes) == 2:
        if "score" not in frame.columns or frame["score"].isna().any():
            return "the logged predictions have no score (P of the second class) on every row"
        score = frame["score"].to_numpy(dtype="float64")
        return np.column_stack([1.0 - score, score]), predicted
    if "probabilities" not in frame.columns or frame["probabilities"].isna().any():
        return "the logged predictions have no class probabilities on every row"
    rows = [dict(row) for row in frame["probabilities"]]
    if any(label not in row for row in rows for label in classes):
        return "some logged class probabilities do not name every class of the model"
    return np.asarray([[row[label] for label in classes] for row in rows], dtype="float64"), predicted


def _text(value: Any) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)


def trusted_scores(record: dict[str, Any] | None, max_error: float) -> tuple[list[dict[str, Any]] | None, str, bool]:
    """Which scores the estimate may read, from the champion's calibration record: (the isotonic
    maps to apply, or None for the raw scores; how they were judged; whether they are usable)."""
    if record is None:
        return None, "the champion has no calibration record (evaluation/calibration.json)", False
    raw = float(record["ece"])
    if raw <= max_error:
        return None, f"raw scores calibrated (test ECE {raw:.4f} <= {max_error:g})", True
    isotonic = record.get("isotonic")
    if isotonic and float(isotonic["ece"]) <= max_error:
        mapped = float(isotonic["ece"])
        return isotonic["maps"], f"isotonic map (test ECE {raw:.4f} raw, {mapped:.4f} mapped, cross-fitted)", True
    mapped_text = f", {float(isotonic['ece']):.4f} with the isotonic map" if isotonic else ", no isotonic map"
    return None, f"scores not calibrated: test ECE {raw:.4f}{mapped_text}, above {max_error:g}", False


def estimate_frame(
    frame: Any, classes: list[str], record: dict[str, Any] | None, max_error: float
) -> tuple[dict[str, float] | None, str]:
    """Estimated metrics of the logged predictions in ``frame`` and how they were made, or None and why not."""
    maps, how, usable = trusted_scores(record, max_error)
    if not usable:
        return None, how
    if record is not None and [str(c) for c in record.get("classes", classes)] != classes:
        return None, f"the calibration record's classes {record.get('classes')} are not the model's {classes}"
    read = logged_probabilities(frame, classes)
    if isinstance(read, str):
        return None, read
    raw, predicted = read
    if not len(predicted):
        return None, "no logged predictions"
    from airflow_mlops.core.model.calibration import apply_maps

    calibrated = apply_maps(raw, maps) if maps else raw
    return expected_metrics(calibrated, raw, predicted), how


def champion_calibration(registry: Any, current: Any) -> dict[str, Any] | None:
    """The champion's calibration record (``evaluation/calibration.json`` on its run), or None."""
    import logging

    from airflow_mlops.core.model.calibration import ARTIFACT

    if not getattr(current, "run_id", None):
        return None
    try:
        return dict(registry.run_json(current.run_id, ARTIFACT))
    except Exception as exc:  # a champion evaluated before the check, or a regressor
        logging.getLogger(__name__).warning("no calibration record for v%s: %s", getattr(current, "version", "?"), exc)
        return None


def assess_estimate(
    spec: Any, current: Any, model: Any, record: dict[str, Any] | None, window: Any, labeled: Any
) -> EstimateCheck | None:
    """The estimate of the champion's metrics on the monitoring ``window`` (its logged predictions),
    judged against its ``test_<metric>`` tag, and on the ``labeled`` rows (to set beside the
    realised metrics). None for a regressor.

    It has decayed when at least ``monitoring.min_labeled_rows`` logged predictions were read and
    the estimated ``promotion.metric`` is worse than the test value by more than
    ``monitoring.estimated_metric_drop``.
    """
    if spec.model.task != "classification":
        return None
    monitoring, metric = spec.monitoring, spec.promotion.metric
    classes = [_text(c) for c in getattr(model, "classes_", [])]
    metrics, how = estimate_frame(window, classes, record, monitoring.max_calibration_error)
    labeled_estimate = None
    if metrics is not None and labeled is not None and len(labeled):
        labeled_estimate, _ = estimate_frame(labeled, classes, record, monitoring.max_calibration_error)
    tag = current.tags.get(f"test_{metric}")
    test_value = float(tag) if tag not in (None, "") else None
    value = (metrics or {}).get(metric)
    drop = None
    if value is not None and test_value is not None:
        drop = (test_value - value) if spec.promotion.higher_is_better else (value - test_value)
    rows, minimum = len(window), monitoring.min_labeled_rows
    if metrics is None:
        decision, decayed = f"no estimate: {how}", False
    elif rows < minimum:
        decision, decayed = f"no decision: {rows} logged prediction(s), fewer than {minimum}", False
    elif drop is None or not np.isfinite(drop):
        decision, decayed = f"no decision: {metric} cannot be estimated or the champion has no test_{metric}", False
    else:
        decayed = drop > monitoring.estimated_metric_drop
        worse = f"{drop:.4f} worse than" if drop > 0 else "not worse than"
        decision = (
            f"estimated {metric} {value:.4f} on {rows} logged predictions is {worse} the champion's test value "
            f"{test_value:.4f} (allowed drop {monitoring.estimated_metric_drop:g})"
        )
    return {
        "metric": metric,
        "higher_is_better": spec.promotion.higher_is_better,
        "available": metrics is not None,
        "calibration": how,
        "rows": rows,
        "min_rows": minimum,
        "value": value,
        "test_value": test_value,
        "drop": drop,
        "estimated_metric_drop": monitoring.estimated_metric_drop,
        "metrics": metrics or {},
        "labeled_estimate": labeled_estimate,
        "retrain": monitoring.use_estimate,
        "decayed": bool(decayed),
        "decision": decision,
    }


def estimate_metric_values(check: EstimateCheck | None) -> dict[str, float]:
    """The check's numbers as MLflow metrics: ``estimated_<metric>`` per metric (the window),
    ``labeled_estimated_<metric>`` (the labeled rows, beside ``labeled_<metric>``),
    ``estimated_metric_drop``, ``estimated_rows`` and ``estimated_decay``."""
    if check is None:
        return {}
    out: dict[str, float] = {"estimated_rows": check["rows"], "estimated_decay": float(check["decayed"])}
    out.update({f"estimated_{key}": value for key, value in check["metrics"].items()})
    out.update({f"labeled_estimated_{key}": value for key, value in (check["labeled_estimate"] or {}).items()})
    if check["drop"] is not None and np.isfinite(check["drop"]):
        out["estimated_metric_drop"] = check["drop"]
    return out
