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


FIGURES = {"latency_p99_ms": 4.2, "batch_latency_p99_ms": 30.0, "model_bytes": 2_500_000.0, "onnx_bytes": 90_000.0,
           "prediction_memory_bytes": 3_000_000.0}  # fmt: skip


def test_a_broken_requirement_fails_with_the_figure_and_the_limit():
    from airflow_mlops.core.model.gate import requirement_checks, requirement_reasons
    from airflow_mlops.spec import RequirementsSpec

    rules = RequirementsSpec(max_p99_latency_ms=2.0, max_model_mb=5.0, max_prediction_memory_mb=1.0, batch_rows=50)
    checks = requirement_checks(FIGURES, {}, rules)
    assert checks["max_p99_latency_ms"] == {"limit": 2.0, "value": 4.2, "unit": "ms", "passed": False, "why": None}
    assert checks["max_model_mb"]["passed"] and checks["max_model_mb"]["value"] == pytest.approx(2.5)
    assert requirement_reasons(checks, rules.batch_rows) == [
        "p99 latency (1 row) 4.2 ms exceeds promotion.requirements.max_p99_latency_ms = 2 ms",
        "prediction memory 3 MB exceeds promotion.requirements.max_prediction_memory_mb = 1 MB",
    ]


def test_the_batch_latency_reason_names_the_rows():
    from airflow_mlops.core.model.gate import requirement_checks, requirement_reasons
    from airflow_mlops.spec import RequirementsSpec

    rules = RequirementsSpec(max_p99_batch_latency_ms=10.0, batch_rows=500)
    assert requirement_reasons(requirement_checks(FIGURES, {}, rules), 500) == [
        "p99 latency (500 rows) 30 ms exceeds promotion.requirements.max_p99_batch_latency_ms = 10 ms"
    ]


def test_a_limit_on_a_figure_that_was_not_measured_fails_and_says_why():
    from airflow_mlops.core.model.gate import requirement_checks, requirement_reasons
    from airflow_mlops.spec import RequirementsSpec

    why = "no ONNX graph: the export failed (cannot convert SVC to ONNX)"
    rules = RequirementsSpec(max_p99_latency_ms=2.0, max_model_mb=5.0)
    checks = requirement_checks({"model_bytes": 1e6}, {"latency": why, "memory": why}, rules)
    assert checks["max_p99_latency_ms"] == {"limit": 2.0, "value": None, "unit": "ms", "passed": False, "why": why}
    assert checks["max_model_mb"]["passed"]  # the model folder is measured without a graph
    assert requirement_reasons(checks, 100) == [
        f"p99 latency (1 row) cannot be checked against promotion.requirements.max_p99_latency_ms = 2 ms: {why}"
    ]


def test_no_requirement_set_means_measured_not_gated():
    from airflow_mlops.core.model.gate import requirement_checks
    from airflow_mlops.spec import RequirementsSpec

    assert requirement_checks(FIGURES, {}, RequirementsSpec()) == {}
    assert requirement_checks({}, {"latency": "no ONNX graph"}, RequirementsSpec()) == {}


def test_every_requirement_field_has_a_row_and_every_row_a_field():
    from airflow_mlops.core.model.gate import REQUIREMENTS
    from airflow_mlops.spec import RequirementsSpec

    limits = {name for name in RequirementsSpec.model_fields if name.startswith("max_")}
    assert {row.field for row in REQUIREMENTS} == limits
