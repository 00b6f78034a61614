"""The offline replay's figures and its judgement against rollout.replay (pure parts)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from airflow_mlops.core.model.replay import judge, replay_figures
from airflow_mlops.spec import parse_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def _spec(**replay):
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["rollout"] = {"replay": {"enabled": True, "min_rows": 10, "min_labeled_rows": 5, **replay}}
    return parse_spec(yaml.safe_dump(raw))


def test_figures_of_a_classifier_compare_labels_and_scores():
    champion_scores = np.linspace(0.05, 0.95, 100)
    champion = (champion_scores > 0.5).astype(int)
    candidate_scores = champion_scores.copy()
    candidate_scores[:10] = 0.99  # ten rows flip to the positive class
    candidate = (candidate_scores > 0.5).astype(int)
    figures = replay_figures("classification", champion, candidate, champion_scores, candidate_scores)
    assert figures["agreement"] == pytest.approx(0.9)
    assert 0 < figures["score_correlation"] < 1
    assert figures["score_mean_shift"] == pytest.approx(float(np.mean(candidate_scores - champion_scores)))
    assert figures["score_psi"] > 0


def test_figures_of_a_regressor_use_the_values_and_their_correlation_as_agreement():
    values = np.arange(50, dtype=float)
    figures = replay_figures("regression", values, values * 3, None, None)
    assert figures["agreement"] == pytest.approx(1.0) == figures["score_correlation"]


def test_a_candidate_that_disagrees_or_shifts_too_much_is_held_naming_the_condition():
    spec = _spec(min_agreement=0.95, max_score_psi=0.1)
    judged, passed, reasons = judge(spec, {"agreement": 0.9, "score_psi": 0.3}, rows=100, labeled=0, drop=None)
    assert judged and not passed
    assert any("min_agreement 0.95" in r for r in reasons) and any("max_score_psi 0.1" in r for r in reasons)


def test_a_metric_drop_on_labeled_rows_holds_only_with_enough_labels():
    spec = _spec(max_metric_drop=0.01)
    assert judge(spec, {}, rows=100, labeled=20, drop=0.05)[1] is False
    judged, passed, reasons = judge(spec, {}, rows=100, labeled=3, drop=0.05)
    assert judged and passed and "fewer than 5" in reasons[-1]
    assert judge(spec, {}, rows=100, labeled=20, drop=0.005)[1] is True


def test_too_few_logged_rows_are_reported_not_judged():
    judged, passed, reasons = judge(_spec(min_agreement=0.99), {"agreement": 0.1}, rows=3, labeled=0, drop=None)
    assert (judged, passed) == (False, True) and "fewer than 10" in reasons[0]
