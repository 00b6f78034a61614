"""The promotion gate decides from metrics alone and always says why."""

from __future__ import annotations

import pytest

from airflow_mlops.core.model.gate import decide_promotion
from airflow_mlops.spec import PromotionSpec

pytestmark = pytest.mark.unit


def test_first_model_passing_thresholds_is_promoted():
    decision = decide_promotion({"roc_auc": 0.8}, None, PromotionSpec(thresholds={"roc_auc": 0.7}))
    assert decision.promote
    assert decision.reasons == ["all gates passed", "no current champion to compare with"]


def test_threshold_failure_blocks_even_without_champion():
    decision = decide_promotion({"roc_auc": 0.65}, None, PromotionSpec(thresholds={"roc_auc": 0.7}))
    assert not decision.promote
    assert "roc_auc=0.6500 fails the threshold >= 0.7" in decision.reasons


def test_lower_is_better_thresholds_are_ceilings():
    rule = PromotionSpec(metric="rmse", thresholds={"rmse": 2.0})
    assert decide_promotion({"rmse": 1.5}, None, rule).promote
    assert not decide_promotion({"rmse": 2.5}, None, rule).promote


def test_candidate_must_beat_champion_strictly_when_no_margin():
    rule = PromotionSpec()
    assert not decide_promotion({"roc_auc": 0.8}, {"roc_auc": 0.8}, rule).promote
    assert decide_promotion({"roc_auc": 0.81}, {"roc_auc": 0.8}, rule).promote


def test_min_improvement_margin_is_required():
    rule = PromotionSpec(min_improvement=0.02)
    blocked = decide_promotion({"roc_auc": 0.81}, {"roc_auc": 0.80}, rule)
    assert not blocked.promote
    assert "improvement +0.0100, required >= 0.02" in blocked.reasons[-1]
    assert decide_promotion({"roc_auc": 0.83}, {"roc_auc": 0.80}, rule).promote


def test_lower_is_better_comparison_with_champion():
    rule = PromotionSpec(metric="rmse")  # the direction follows from the metric's name
    assert not rule.higher_is_better
    assert decide_promotion({"rmse": 1.0}, {"rmse": 1.2}, rule).promote
    assert not decide_promotion({"rmse": 1.3}, {"rmse": 1.2}, rule).promote


def test_missing_metric_is_refused_with_the_available_ones():
    decision = decide_promotion({"accuracy": 0.9}, None, PromotionSpec(metric="roc_auc"))
    assert not decision.promote
    assert "metric 'roc_auc' was not computed" in decision.reasons[0]


def test_a_metric_that_is_not_a_number_never_passes():
    rule = PromotionSpec(metric="roc_auc")
    nan = float("nan")
    alone = decide_promotion({"roc_auc": nan, "accuracy": 0.9}, None, rule)
    assert not alone.promote and "metric 'roc_auc' was not computed" in alone.reasons[0]
    versus = decide_promotion({"roc_auc": 0.9}, {"roc_auc": nan}, rule)
    assert not versus.promote and "champion's roc_auc is not a number" in versus.reasons[0]


def test_threshold_checks_say_each_bound_the_value_and_whether_it_holds():
    from airflow_mlops.core.model.gate import threshold_checks

    rule = PromotionSpec(thresholds={"roc_auc": 0.7, "log_loss": 0.5, "recall": 0.4})
    checks = threshold_checks({"roc_auc": 0.8, "log_loss": 0.6, "recall": float("nan")}, rule)
    assert checks == {
        "log_loss": {"bound": 0.5, "value": 0.6, "passed": False, "relation": "<="},
        "recall": {"bound": 0.4, "value": None, "passed": False, "relation": ">="},  # NaN: not computed
        "roc_auc": {"bound": 0.7, "value": 0.8, "passed": True, "relation": ">="},
    }


def test_improvement_is_signed_so_that_better_is_positive_whatever_the_direction():
    from airflow_mlops.core.model.gate import improvement

    assert improvement(0.84, 0.81, PromotionSpec()) == pytest.approx(0.03)
    assert improvement(1.0, 1.2, PromotionSpec(metric="rmse")) == pytest.approx(0.2)
    assert improvement(0.8, None, PromotionSpec()) is None
    assert improvement(float("nan"), 0.8, PromotionSpec()) is None
