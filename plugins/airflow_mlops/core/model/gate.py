"""The promotion gate: pure decisions over metric dicts, no I/O.

A candidate becomes champion only when it clears every absolute threshold in the
spec and beats the current champion, evaluated on the same test data, by at least
``min_improvement`` on the spec's metric, and keeps within every limit of
``promotion.requirements`` (latency, size, memory measured at packaging).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from airflow_mlops.core.contracts import RequirementCheck, ThresholdCheck
from airflow_mlops.spec import LOWER_IS_BETTER, PromotionSpec, RequirementsSpec


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


@dataclass(frozen=True)
class Requirement:
    """One limit of ``promotion.requirements``: the figure it bounds (``core.model.footprint``)."""

    field: str  # the spec field, e.g. max_p99_latency_ms
    figure: str  # the measured figure, e.g. latency_p99_ms
    group: str  # the figure's group in the package's ``nfr_unmeasured``
    label: str  # how the reason names it
    unit: str
    scale: float  # figure x scale = value in the limit's unit


MB = 1e-6  # bytes -> MB (10^6 bytes)
REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("max_p99_latency_ms", "latency_p99_ms", "latency", "p99 latency (1 row)", "ms", 1.0),
    Requirement("max_p99_batch_latency_ms", "batch_latency_p99_ms", "latency", "p99 latency (batch)", "ms", 1.0),
    Requirement("max_model_mb", "model_bytes", "model_size", "model size", "MB", MB),
    Requirement("max_onnx_mb", "onnx_bytes", "onnx_size", "ONNX graph size", "MB", MB),
    Requirement("max_prediction_memory_mb", "prediction_memory_bytes", "memory", "prediction memory", "MB", MB),
)


def requirement_checks(
    figures: dict[str, float], unmeasured: dict[str, str], rules: RequirementsSpec
) -> dict[str, RequirementCheck]:
    """Each limit set in ``rules`` against its measured figure; a figure that is missing (no ONNX
    graph, a failed measurement) fails its limit, with why: an unknown latency is not a fast one."""
    limits = rules.limits()
    checks: dict[str, RequirementCheck] = {}
    for row in REQUIREMENTS:
        if row.field not in limits:
            continue
        raw = figures.get(row.figure)
        value = raw * row.scale if raw is not None and math.isfinite(raw) else None
        why = None if value is not None else unmeasured.get(row.group, "not measured at packaging")
        checks[row.field] = {"limit": limits[row.field], "value": value, "unit": row.unit,
                             "passed": value is not None and value <= limits[row.field], "why": why}  # fmt: skip
    return checks


def requirement_reasons(checks: dict[str, RequirementCheck], batch_rows: int) -> list[str]:
    """Why each failed limit fails, with the figure and the limit."""
    reasons = []
    labels = {row.field: row.label.replace("batch", f"{batch_rows} rows") for row in REQUIREMENTS}
    for field_name, check in checks.items():
        if check["passed"]:
            continue
        limit = f"promotion.requirements.{field_name} = {check['limit']:g} {check['unit']}"
        if check["value"] is None:
            reasons.append(f"{labels[field_name]} cannot be checked against {limit}: {check['why']}")
        else:
            reasons.append(f"{labels[field_name]} {check['value']:.4g} {check['unit']} exceeds {limit}")
    return reasons
