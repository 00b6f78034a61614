"""The promotion gate: pure decisions over metric dicts, no I/O.

A candidate becomes champion only when it clears every absolute threshold in the
spec and beats the current champion, evaluated on the same test data, by at least
``min_improvement`` on the spec's metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from airflow_mlops.core.contracts import ThresholdCheck
from airflow_mlops.spec import LOWER_IS_BETTER, PromotionSpec


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    metric: str = ""
    candidate: float | None = None
    champion: float | None = None


def _passes_floor(metric: str, value: float, bound: float) -> bool:
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def threshold_checks(candidate: dict[str, float], rule: PromotionSpec) -> dict[str, ThresholdCheck]:
    """Each absolute threshold of ``rule`` with the candidate's value and whether it holds (a
    metric not computed, or not a finite number, holds no threshold)."""
    checks: dict[str, ThresholdCheck] = {}
    for metric, bound in sorted(rule.thresholds.items()):
        value = candidate.get(metric)
        if value is not None and not math.isfinite(value):
            value = None
        checks[metric] = {
            "bound": bound,
            "value": value,
            "passed": value is not None and _passes_floor(metric, value, bound),
            "relation": "<=" if metric in LOWER_IS_BETTER else ">=",
        }
    return checks


def improvement(candidate: float | None, champion: float | None, rule: PromotionSpec) -> float | None:
    """``candidate - champion`` on the primary metric, signed so that a positive value is better."""
    if candidate is None or champion is None or not (math.isfinite(candidate) and math.isfinite(champion)):
        return None
    return (1.0 if rule.higher_is_better else -1.0) * (candidate - champion)


def decide_promotion(
    candidate: dict[str, float], champion: dict[str, float] | None, rule: PromotionSpec
) -> GateDecision:
    """Decide whether ``candidate`` replaces ``champion`` under ``rule``; say why either way.

    A metric that is not a finite number (NaN: e.g. ROC AUC on a test split missing a
    class) counts as not computed: it can neither pass a threshold nor win a comparison.
    """
    candidate = {k: v for k, v in candidate.items() if math.isfinite(v)}
    if champion is not None and not math.isfinite(champion.get(rule.metric, 0.0)):
        return GateDecision(
            promote=False,
            reasons=[f"the champion's {rule.metric} is not a number on this test split; compare by hand"],
            metric=rule.metric,
            candidate=candidate.get(rule.metric),
        )
    decision = GateDecision(promote=True, metric=rule.metric)
    if rule.metric not in candidate:
        return GateDecision(
            promote=False,
            reasons=[f"metric '{rule.metric}' was not computed; available: {sorted(candidate)}"],
            metric=rule.metric,
        )
    decision.candidate = candidate[rule.metric]

    for metric, bound in sorted(rule.thresholds.items()):
        value = candidate.get(metric)
        if value is None:
            decision.promote = False
            decision.reasons.append(f"threshold on '{metric}' cannot be checked: metric not computed")
        elif not _passes_floor(metric, value, bound):
            decision.promote = False
            relation = "<=" if metric in LOWER_IS_BETTER else ">="
            decision.reasons.append(f"{metric}={value:.4f} fails the threshold {relation} {bound}")

    if champion is None or rule.metric not in champion:
        decision.reasons.append("no current champion to compare with")
    else:
        decision.champion = champion[rule.metric]
        sign = 1.0 if rule.higher_is_better else -1.0
        gain = sign * (decision.candidate - decision.champion)
        # With no required margin a tie keeps the champion: a change must be an improvement.
        improved = gain > 0 if rule.min_improvement == 0 else gain >= rule.min_improvement
        comparison = (
            f"{rule.metric}: candidate {decision.candidate:.4f} vs champion {decision.champion:.4f} "
            f"(improvement {gain:+.4f}, required {'>' if rule.min_improvement == 0 else '>='} "
            f"{rule.min_improvement})"
        )
        decision.reasons.append(comparison)
        if not improved:
            decision.promote = False
    if decision.promote:
        decision.reasons.insert(0, "all gates passed")
    return decision
