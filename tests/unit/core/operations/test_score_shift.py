"""Score shift statistics shared by the replay and the canary."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.core.operations import score_shift

pytestmark = pytest.mark.unit


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 5, 20_000)
    assert score_shift.score_psi(reference, rng.beta(2, 5, 20_000)) < 0.01
    assert score_shift.score_psi(reference, rng.beta(5, 2, 20_000)) > 1.0


def test_a_constant_model_against_a_varied_one_has_a_large_psi():
    varied = np.random.default_rng(1).uniform(0, 1, 5_000)
    assert score_shift.score_psi(varied, np.full(5_000, 0.5)) > 1.0
    assert score_shift.score_psi(np.full(5_000, 0.5), varied) > 1.0


def test_empty_or_non_finite_sides_give_no_psi():
    assert score_shift.score_psi(np.array([]), np.array([0.1])) is None
    assert score_shift.score_psi(np.array([np.nan]), np.array([0.1])) is None


def test_correlation_agreement_and_mean_shift():
    a = np.array([0.1, 0.4, 0.6, 0.9])
    assert score_shift.correlation(a, a * 2 + 1) == pytest.approx(1.0)
    assert score_shift.correlation(a, np.full(4, 0.3)) is None  # a constant side: undefined
    assert score_shift.agreement(np.array([1, 0, 1, 1]), np.array(["1", "0", "0", "1"])) == 0.75
    assert score_shift.agreement(np.array([]), np.array([])) is None
    assert score_shift.mean_shift(a, a + 0.25) == pytest.approx(0.25)
