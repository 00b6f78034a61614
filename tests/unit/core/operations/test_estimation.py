"""The estimate without labels (CBPE): its expected confusion matrix, its ROC AUC, its error
under covariate shift on 20,000 rows, and what a miscalibrated model or concept drift does to it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from airflow_mlops.core.model.calibration import apply_maps, calibration_record
from airflow_mlops.core.operations import estimation as est

pytestmark = pytest.mark.unit

ROWS = 20_000
TOLERANCE = 0.03  # |estimated - realised| on 20,000 rows, the bound docs/concepts.md states
WEIGHTS = np.array([1.5, -2.0, 0.8])


def _rows(rng, rows: int, shift: float = 0.0, concept: float = 0.0):
    """Features and labels from a logistic truth; ``shift`` narrows the features toward the decision
    boundary and moves one (covariate shift: harder rows), ``concept`` changes P(label | features) itself."""
    x = rng.normal(0.0, 1.0, (rows, 3)) * (1 - 0.5 * shift)
    x[:, 0] += 0.3 * shift
    weights = WEIGHTS * (1 - concept)
    p = 1 / (1 + np.exp(-(x @ weights - 0.3)))
    return x, (rng.random(rows) < p).astype(int)


def _realised(truth, predicted, raw) -> dict[str, float]:
    return {
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(truth, predicted, zero_division=0),
        "recall": skm.recall_score(truth, predicted, zero_division=0),
        "f1": skm.f1_score(truth, predicted, zero_division=0),
        "roc_auc": skm.roc_auc_score(truth, raw[:, 1]),
        "log_loss": skm.log_loss(truth, raw),
    }


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(7)
    x, y = _rows(rng, ROWS)
    return LogisticRegression().fit(x, y), rng


def test_expected_confusion_of_known_probabilities():
    confusion = est.expected_confusion(np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, True, False, False]))
    assert confusion == pytest.approx({"tp": 1.7, "fp": 0.3, "tn": 1.6, "fn": 0.4})
    metrics = est.confusion_metrics(confusion)
    assert metrics["accuracy"] == pytest.approx(3.3 / 4)
    assert metrics["precision"] == pytest.approx(1.7 / 2.0)
    assert metrics["recall"] == pytest.approx(1.7 / 2.1)
    assert metrics["f1"] == pytest.approx(3.4 / (3.4 + 0.3 + 0.4))
    # Nothing predicted positive: precision 0, as the evaluation's zero_division=0 says.
    assert est.confusion_metrics(est.expected_confusion(np.array([0.2]), np.array([False])))["precision"] == 0.0


def test_expected_roc_auc_of_certain_scores_is_the_realised_auc():
    truth = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    ranking = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert est.expected_roc_auc(ranking, truth.astype(float)) == pytest.approx(skm.roc_auc_score(truth, ranking))
    # Tied scores move together, as in the realised curve.
    tied = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1])
    assert est.expected_roc_auc(tied, truth.astype(float)) == pytest.approx(skm.roc_auc_score(truth, tied))
    assert np.isnan(est.expected_roc_auc(ranking, np.ones(8)))  # no expected negatives


def test_expected_roc_auc_is_the_mean_auc_of_labels_drawn_from_the_scores():
    rng = np.random.default_rng(3)
    p = rng.beta(2, 3, 4000)
    drawn = [skm.roc_auc_score(rng.random(len(p)) < p, p) for _ in range(40)]
    assert est.expected_roc_auc(p, p) == pytest.approx(np.mean(drawn), abs=0.005)


@pytest.mark.parametrize("shift", [0.0, 0.6, 1.2])
def test_estimate_under_covariate_shift_is_within_tolerance_of_the_realised_metrics(fitted, shift):
    model, rng = fitted
    x, truth = _rows(rng, ROWS, shift=shift)
    raw, predicted = model.predict_proba(x), model.predict(x)
    estimated = est.expected_metrics(raw, raw, predicted)
    realised = _realised(truth, predicted, raw)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert abs(estimated[name] - realised[name]) <= TOLERANCE, (name, estimated[name], realised[name])
    assert abs(estimated["log_loss"] - realised["log_loss"]) <= 0.05
    if shift == 1.2:  # the shift matters: the realised accuracy fell, and the estimate followed it
        baseline = _realised(*_truth_of(model, rng))["accuracy"]
        assert realised["accuracy"] < baseline - 0.05


def _truth_of(model, rng):
    x, truth = _rows(rng, ROWS)
    return truth, model.predict(x), model.predict_proba(x)


def test_multiclass_estimate_is_within_tolerance_under_covariate_shift():
    rng = np.random.default_rng(11)
    weights = np.array([[2.0, 0.0], [-1.0, 1.5], [-1.0, -1.5]])

    def draw(rows, shift):
        x = rng.normal(0.0, 1.0, (rows, 2)) * (1 - 0.5 * shift)
        logits = x @ weights.T
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return x, (rng.random((rows, 1)) > p.cumsum(axis=1)).sum(axis=1)

    model = LogisticRegression(max_iter=500).fit(*draw(ROWS, 0.0))
    x, truth = draw(ROWS, 1.0)
    raw, predicted = model.predict_proba(x), model.predict(x)
    estimated = est.expected_metrics(raw, raw, predicted)
    averaging = {"average": "macro", "zero_division": 0}
    realised = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "f1": skm.f1_score(truth, predicted, **averaging),
        "precision": skm.precision_score(truth, predicted, **averaging),
        "recall": skm.recall_score(truth, predicted, **averaging),
        "roc_auc": skm.roc_auc_score(truth, raw, multi_class="ovr"),
    }
    for name, value in realised.items():
        assert abs(estimated[name] - value) <= TOLERANCE, (name, estimated[name], value)


def _sharpen(probabilities, power: float = 3.0):
    """Overconfident scores: the log-odds multiplied by ``power`` (same ranking, same predictions)."""
    odds = np.log(probabilities[:, 1] / probabilities[:, 0]) * power
    sharp = 1 / (1 + np.exp(-odds))
    return np.column_stack([1 - sharp, sharp])


def test_a_miscalibrated_model_overestimates_and_its_isotonic_map_corrects_it(fitted):
    model, rng = fitted
    x_test, y_test = _rows(rng, 5000)
    record = calibration_record(_sharpen(model.predict_proba(x_test)), y_test, [0, 1], seed=0)
    assert record["ece"] > 0.05 and record["isotonic"]["ece"] < 0.03
    x, truth = _rows(rng, ROWS, shift=1.2)
    raw = _sharpen(model.predict_proba(x))
    predicted = (raw[:, 1] > 0.5).astype(int)
    realised = _realised(truth, predicted, raw)
    naive = est.expected_metrics(raw, raw, predicted)
    assert naive["accuracy"] - realised["accuracy"] > 0.08  # trusting overconfident scores: far too optimistic
    maps, how, usable = est.trusted_scores(record, max_error=0.05)
    assert usable and maps is not None and how.startswith("isotonic map")
    mapped = est.expected_metrics(apply_maps(raw, maps), raw, predicted)
    for name in ("accuracy", "f1", "roc_auc"):
        assert abs(mapped[name] - realised[name]) <= TOLERANCE, (name, mapped[name], realised[name])
    # A bound neither the raw scores nor the map meet: no estimate, and the reason says so.
    assert est.trusted_scores(record, max_error=0.001)[1:] == (
        f"scores not calibrated: test ECE {record['ece']:.4f}, {record['isotonic']['ece']:.4f} with the "
        "isotonic map, above 0.001",
        False,
    )


def test_concept_drift_is_invisible_to_the_estimate(fitted):
    model, rng = fitted
    x, truth = _rows(rng, ROWS, concept=0.8)  # same features, weaker relation to the label
    raw, predicted = model.predict_proba(x), model.predict(x)
    estimated, realised = est.expected_metrics(raw, raw, predicted), _realised(truth, predicted, raw)
    assert estimated["accuracy"] - realised["accuracy"] > 0.15  # labels are the only way to see it


def test_logged_scores_are_read_as_probabilities_of_the_model_classes():
    binary = pd.DataFrame({"prediction": [1, 0, 1], "score": [0.8, 0.3, 0.6]})
    raw, predicted = est.logged_probabilities(binary, ["0", "1"])
    assert np.allclose(raw, [[0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]) and predicted.tolist() == [1, 0, 1]
    maps = [[("a", 0.7), ("b", 0.2), ("c", 0.1)], [("a", 0.1), ("b", 0.1), ("c", 0.8)]]
    multi = pd.DataFrame({"prediction": ["a", "c"], "score": [0.7, 0.8], "probabilities": maps})
    raw, predicted = est.logged_probabilities(multi, ["a", "b", "c"])
    assert raw[1].tolist() == [0.1, 0.1, 0.8] and predicted.tolist() == [0, 2]
    assert "none of the model's classes" in est.logged_probabilities(binary, ["no", "yes"])
    assert "no score" in est.logged_probabilities(binary.assign(score=[0.1, None, 0.2]), ["0", "1"])


def test_estimate_frame_says_why_there_is_no_estimate():
    frame = pd.DataFrame({"prediction": [1, 0], "score": [0.8, 0.3]})
    assert est.estimate_frame(frame, ["0", "1"], None, 0.05) == (
        None,
        "the champion has no calibration record (evaluation/calibration.json)",
    )
    record = {"classes": ["0", "1"], "ece": 0.01, "isotonic": None}
    metrics, how = est.estimate_frame(frame, ["0", "1"], record, 0.05)
    assert how.startswith("raw scores calibrated") and metrics["accuracy"] == pytest.approx((0.8 + 0.7) / 2)
    other = {"classes": ["no", "yes"], "ece": 0.01, "isotonic": None}
    assert "are not the model's" in est.estimate_frame(frame, ["0", "1"], other, 0.05)[1]
