"""Are a classifier's scores probabilities? The calibration check of the evaluation, and its map.

Performance estimation without labels (``core.operations.estimation``) reads a logged score ``p``
as "this row is positive with probability p": that holds only for calibrated scores. The
evaluation measures it on the hold-out test split (the only split a model refit on train +
validation has not learned from): the expected calibration error (ECE: 10 equal-width bins of the
score, the row-weighted mean |mean score - share of positives|; for more than two classes the mean
over classes, one against the rest) and the Brier score. It also fits an isotonic map per class
(score -> share of positives, monotone), whose own ECE is measured by 2-fold cross-fitting on the
same split (fit on one half, measure on the other), so a map that only memorised the test rows
cannot look good. Both go to ``evaluation/calibration.json`` on the candidate's run; monitoring
decides which scores it trusts (``monitoring.max_calibration_error``).

The map is stored as its breakpoints (JSON, never a pickle) and applied with ``np.interp``,
which is what scikit-learn's ``IsotonicRegression(out_of_bounds="clip").predict`` computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ARTIFACT = "evaluation/calibration.json"
BINS = 10
MAX_POINTS = 2000  # breakpoints kept per class map (a map of more is thinned, evenly)


def expected_calibration_error(scores: np.ndarray, positive: np.ndarray, bins: int = BINS) -> float:
    """ECE of one class's ``scores`` against ``positive`` (0/1): equal-width bins on [0, 1]."""
    scores = np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)
    positive = np.asarray(positive, dtype="float64")
    if not len(scores):
        return float("nan")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, scores, bins) - np.bincount(which, positive, bins))
    return float(gap.sum() / counts.sum())


def _ovr(probabilities: np.ndarray, truth: np.ndarray, classes: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per class (one against the rest): its score column and 0/1 truth. Two classes: the second only."""
    columns = [1] if len(classes) == 2 else range(len(classes))
    return [(probabilities[:, k], (truth == classes[k]).astype("float64")) for k in columns]


def calibration_errors(probabilities: np.ndarray, truth: np.ndarray, classes: list[Any]) -> dict[str, float]:
    """ECE (mean over the one-against-rest classes) and Brier score (mean over them) of ``probabilities``."""
    pairs = _ovr(probabilities, truth, classes)
    return {
        "ece": float(np.mean([expected_calibration_error(s, y) for s, y in pairs])),
        "brier": float(np.mean([np.mean((s - y) ** 2) for s, y in pairs])),
    }


def _fit_map(scores: np.ndarray, positive: np.ndarray) -> dict[str, list[float]]:
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, positive)
    x, y = np.asarray(fitted.X_thresholds_), np.asarray(fitted.y_thresholds_)
    if len(x) > MAX_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
        x, y = x[keep], y[keep]
    return {"x": [float(v) for v in x], "y": [float(v) for v in y]}


def apply_maps(probabilities: np.ndarray, maps: list[dict[str, list[float]]]) -> np.ndarray:
    """``probabilities`` (rows x classes) through the per-class maps; rows renormalised to sum 1.

    Two classes have one map (the second class's): the first is its complement.
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.shape[1] == 2 and len(maps) == 1:
        positive = np.interp(probabilities[:, 1], maps[0]["x"], maps[0]["y"])
        return np.column_stack([1.0 - positive, positive])
    mapped = np.column_stack([np.interp(probabilities[:, k], m["x"], m["y"]) for k, m in enumerate(maps)])
    total = mapped.sum(axis=1, keepdims=True)
    # A row every map sends to 0 keeps its raw scores rather than becoming 0/0.
    return np.where(total > 0, mapped / np.where(total > 0, total, 1.0), probabilities)


def _cross_fitted(probabilities: np.ndarray, truth: np.ndarray, classes: list[Any], seed: int) -> dict[str, float]:
    """ECE and Brier of the isotonic maps, each half of the rows mapped by maps fitted on the other."""
    folds = np.random.default_rng(seed).permutation(len(truth)) % 2
    mapped = np.empty_like(probabilities, dtype="float64")
    for fold in (0, 1):
        fit_rows, apply_rows = folds != fold, folds == fold
        maps = [_fit_map(s, y) for s, y in _ovr(probabilities[fit_rows], truth[fit_rows], classes)]
        mapped[apply_rows] = apply_maps(probabilities[apply_rows], maps)
    return calibration_errors(mapped, truth, classes)


def calibration_record(probabilities: np.ndarray, truth: np.ndarray, classes: list[Any], seed: int) -> dict[str, Any]:
    """What ``evaluation/calibration.json`` holds: the raw scores' ECE and Brier, the isotonic
    maps fitted on every row and their cross-fitted ECE and Brier, the classes (as text) and rows."""
    from airflow_mlops.core.model.evaluation import class_label

    probabilities = np.asarray(probabilities, dtype="float64")
    truth = np.asarray(truth)
    record: dict[str, Any] = {
        "classes": [class_label(c) for c in classes],
        "rows": len(truth),
        "bins": BINS,
        **calibration_errors(probabilities, truth, classes),
    }
    if len(truth) >= 20 and all(0 < y.sum() < len(y) for _, y in _ovr(probabilities, truth, classes)):
        record["isotonic"] = {
            **_cross_fitted(probabilities, truth, classes, seed),
            "maps": [_fit_map(s, y) for s, y in _ovr(probabilities, truth, classes)],
        }
    else:
        record["isotonic"] = None  # too few rows, or a class absent: no map can be judged
    return record


def evaluate_calibration(model: Any, frame: Any, spec: Any) -> dict[str, Any] | None:
    """``calibration_record`` of ``model`` on ``frame`` (the test split); None for a regressor or a
    classifier without ``predict_proba``."""
    from airflow_mlops.core.model.training import feature_frame, label_array

    if spec.model.task != "classification" or not hasattr(model, "predict_proba"):
        return None
    classes = list(getattr(model, "classes_", []))
    if len(classes) < 2:
        return None
    probabilities = model.predict_proba(feature_frame(frame, spec))
    return calibration_record(probabilities, label_array(frame, spec), classes, spec.model.seed)


def log_calibration(registry: Any, run_id: str, record: dict[str, Any] | None) -> None:
    """``record`` as ``evaluation/calibration.json`` on ``run_id``, its ECE and Brier as metrics
    (``calibration_ece``, ``calibration_brier``, ``calibration_isotonic_ece``). Safe to retry:
    the same artifact and values are written again."""
    if record is None:
        return
    registry.client.log_dict(run_id, record, ARTIFACT)
    metrics = {"calibration_ece": record["ece"], "calibration_brier": record["brier"]}
    if record.get("isotonic"):
        metrics["calibration_isotonic_ece"] = record["isotonic"]["ece"]
    for key, value in metrics.items():
        registry.client.log_metric(run_id, key, value)
