"""The calibration check of the evaluation: ECE and Brier of known scores, the isotonic map, its record."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.core.model import calibration as cal

pytestmark = pytest.mark.unit


def test_ece_of_calibrated_scores_is_small_and_of_overconfident_ones_large():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.0, 1.0, 50_000)
    truth = rng.random(len(p)) < p
    assert cal.expected_calibration_error(p, truth) < 0.01
    sharp = np.where(p > 0.5, 1.0, 0.0)  # certain, and wrong a quarter of the time
    assert cal.expected_calibration_error(sharp, truth) == pytest.approx(0.25, abs=0.01)


def test_ece_of_a_known_binning():
    # Bin [0.1, 0.2): mean score 0.15, share 0.5; bin [0.9, 1.0]: mean 0.95, share 1.0.
    scores, truth = np.array([0.1, 0.2 - 1e-9, 0.95, 0.95]), np.array([0, 1, 1, 1])
    assert cal.expected_calibration_error(scores, truth) == pytest.approx((2 * 0.35 + 2 * 0.05) / 4)


def test_isotonic_maps_are_applied_and_rows_renormalised():
    maps = [{"x": [0.0, 1.0], "y": [0.0, 0.5]}]  # halves the positive class's score
    assert np.allclose(cal.apply_maps(np.array([[0.2, 0.8]]), maps), [[0.6, 0.4]])
    three = [{"x": [0.0, 1.0], "y": [0.0, 1.0]}, {"x": [0.0, 1.0], "y": [0.0, 1.0]}, {"x": [0.0, 1.0], "y": [0.0, 0.0]}]
    assert np.allclose(cal.apply_maps(np.array([[0.2, 0.2, 0.6]]), three), [[0.5, 0.5, 0.0]])


def test_the_record_holds_raw_and_cross_fitted_errors_and_json_maps():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.0, 1.0, 4000)
    truth = (rng.random(len(p)) < p).astype(int)
    sharp = 1 / (1 + np.exp(-4 * np.log(p / (1 - p))))
    record = cal.calibration_record(np.column_stack([1 - sharp, sharp]), truth, [0, 1], seed=0)
    assert record["classes"] == ["0", "1"] and record["rows"] == 4000
    assert record["ece"] > 0.1 > 0.03 > record["isotonic"]["ece"]
    (only,) = record["isotonic"]["maps"]  # two classes: one map, of the second class
    assert all(isinstance(v, float) for v in only["x"]) and np.all(np.diff(only["y"]) >= 0)
    # Too few rows for a map to be judged: none.
    assert cal.calibration_record(np.array([[0.5, 0.5]] * 5), np.array([0, 1, 0, 1, 0]), [0, 1], 0)["isotonic"] is None
