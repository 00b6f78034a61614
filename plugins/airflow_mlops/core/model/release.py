"""Release stages of the training pipeline: register, gate and promote a packaged candidate.

The seam operators/release.py calls (core/model/stages.py holds the training side). Every stage
takes the ``Registry`` (the operator's MLflow hook builds it) and returns a small typed dict for XCom
(``core.contracts``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, cast

from airflow_mlops import __version__
from airflow_mlops.core.contracts import (
    Approval,
    DatasetRef,
    Evaluation,
    GateResult,
    GateVerdict,
    OnnxVerdict,
    Package,
    PromotionRecord,
    Registered,
    RequirementCheck,
    SplitRefs,
    TrainingResult,
    ValidationResult,
)
from airflow_mlops.core.data.validation import carried_warnings as validation_warnings
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.model.gate import (
    GateDecision,
    decide_promotion,
    improvement,
    requirement_checks,
    requirement_reasons,
    threshold_checks,
)
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.core.registry.integrity import artifact_digests
from airflow_mlops.core.registry.promotion import promote_once
from airflow_mlops.spec import PipelineSpec

log = logging.getLogger(__name__)

# The validate task's report, logged on the training run (operators.links names the same path).
VALIDATION_ARTIFACT = "validation/report.json"

APPROVAL_TAG = "approval"  # JSON ``Approval``: the person's answer to the approval request
VERDICT_TAG = "gate_verdict"  # JSON ``GateVerdict``: every number the gate compared
# MLflow keeps a version tag value in a 5000-character column on SQL backends.
TAG_MAX_CHARS = 4500


class PromotionRejected(NothingToProcessError):
    """A person rejected the candidate (its ``approval`` tag): it is never promoted."""


def register_candidate(
    spec: PipelineSpec,
    registry: Registry,
    training: TrainingResult,
    evaluation: Evaluation,
    dataset: DatasetRef,
    split: SplitRefs,
    lineage: dict[str, str],
    package: Package | None = None,
    validation: ValidationResult | None = None,
) -> Registered:
    """Register the candidate as a new model version, tagged with its lineage, metrics, package,
    the validation warnings of its data (``validation``: the validate task's result, see
    ``core.data.validation.carried_warnings``) and the sha256 of its artifacts (``core.registry.integrity``: checked
    again before it becomes champion).

    Safe to retry: the version a killed attempt registered from the same training run is
    reused and its tags set again (``Registry.register``), never a second version.
    """
    tags = {
        "spec_fingerprint": spec.fingerprint(),
        "training_fingerprint": spec.training_fingerprint(),  # compared by the code-change watcher
        "data_fingerprint": dataset["fingerprint"],
        "train_fingerprint": split["train"]["fingerprint"],
        "test_fingerprint": split["test"]["fingerprint"],
        "reference_uri": split["train"]["uri"],
        "test_uri": split["test"]["uri"],
        "code_version": __version__,
        "duplicates_dropped": str(dataset.get("duplicates_dropped", 0)),
        "batches_skipped_schema": str(dataset.get("batches_skipped_schema", 0)),
        **{f"airflow.{k}": v for k, v in lineage.items()},
        **{f"test_{k}": f"{v:.6f}" for k, v in evaluation["candidate"].items()},
    }
    tags.update(validation_warnings.version_tags(validation, validation_warnings.load(validation)))
    if training.get("winner"):
        tags["winner_trial"] = str(training["winner"]["label"])[:250]
    onnx_uri, parity = (package.get("onnx_uri"), package.get("parity")) if package else (None, None)
    if onnx_uri and parity is not None:  # a package with a graph always has its parity
        tags["onnx_max_abs_diff"] = f"{parity['max_abs_diff']:.3g}"
        tags["onnx_parity"] = "passed" if parity["passed"] else "failed"
        if parity["passed"]:  # only a twin that matches may be served in the model's place
            tags["onnx_uri"] = onnx_uri
    tags.update(artifact_digests(registry, training["model_uri"], tags.get("onnx_uri")))
    name = spec.registered_model_name
    log_validation_report(registry, training["run_id"], validation)
    version = registry.register(name, training["model_uri"], tags, run_id=training["run_id"])
    return {"name": name, "version": version}


def log_validation_report(registry: Registry, run_id: str, validation: ValidationResult | None) -> bool:
    """Log the validate task's report (the Great Expectations results and the landed batches'
    verdicts, ``report_uri``) on the training run as ``validation/report.json``.

    The validate task runs before the training run exists (the plan task opens it), so the first
    stage that has both logs it; the version's run then shows what its data passed. Safe to retry:
    the same artifact is written again. A report that cannot be read is logged and skipped: it
    does not keep the candidate from being registered. True when the report was logged.
    """
    report_uri = validation.get("report_uri") if validation else None
    if not report_uri:
        return False
    from airflow_mlops.core.io import storage

    try:
        report = storage.read_json(str(report_uri))
    except (OSError, ValueError) as exc:
        log.warning("validation report %s not logged on run %s: %s", report_uri, run_id, exc)
        return False
    registry.client.log_dict(run_id, report, VALIDATION_ARTIFACT)
    return True


def _packaging_reasons(spec: PipelineSpec, package: Package | None) -> list[str]:
    """Why packaging blocks promotion (``packaging.onnx: required``), or nothing."""
    if spec.packaging.onnx != "required":
        return []
    if package is None:
        return ["no ONNX package was built (packaging.onnx is required)"]
    error = package.get("error")
    if error:
        return [f"ONNX export failed: {error[:300]}"]
    parity: Mapping[str, object] = package.get("parity") or {}
    if not parity.get("passed"):
        return [
            f"ONNX parity failed: max |onnx - sklearn| = {parity.get('max_abs_diff')} over {parity.get('rows')} "
            f"test rows ({parity.get('rows_over_tolerance')} above {parity.get('tolerance')}"
            f"{' x max(1, |prediction|)' if parity.get('relative_to_magnitude') else ''})"
        ]
    return []


def _onnx_verdict(package: Package | None) -> OnnxVerdict | None:
    if package is None:
        return None
    parity: Mapping[str, Any] = package.get("parity") or {}
    return {
        "policy": package.get("policy", "?"),
        "exported": bool(package.get("onnx_uri")),
        "error": (package.get("error") or None) and str(package.get("error"))[:300],
        "passed": parity.get("passed") if parity else None,
        "max_abs_diff": parity.get("max_abs_diff"),
        "rows": parity.get("rows"),
        "tolerance": parity.get("tolerance"),
        "labels_agree": parity.get("labels_agree"),
    }


def _requirement_checks(spec: PipelineSpec, package: Package | None) -> dict[str, RequirementCheck]:
    """``promotion.requirements`` against the package's figures (none without a package)."""
    figures, missing = (package.get("nfr") or {}, package.get("nfr_unmeasured") or {}) if package else ({}, {})
    if package is None:
        missing = dict.fromkeys(("latency", "onnx_size", "memory", "model_size"), "no package task result")
    return requirement_checks(figures, missing, spec.promotion.requirements)


def gate_verdict(
    spec: PipelineSpec,
    evaluation: Evaluation,
    package: Package | None,
    decision: GateDecision,
    details: Mapping[str, Any],
) -> GateVerdict:
    """Every number the gate compared: the primary metric of candidate and champion, the
    thresholds, all test metrics of both on the same rows, the ONNX parity, the latency, size and
    memory figures and the requirements on them (``GateVerdict``)."""
    rule = spec.promotion
    test_rows = details.get("params", {}).get("test_rows")
    return {
        "promote": decision.promote,
        "metric": rule.metric,
        "higher_is_better": rule.higher_is_better,
        "candidate": decision.candidate,
        "champion": decision.champion,
        "champion_version": evaluation["champion_version"],
        "min_improvement": rule.min_improvement,
        "improvement": improvement(decision.candidate, decision.champion, rule),
        "thresholds": threshold_checks(evaluation["candidate"], rule),
        "metrics": {"candidate": dict(evaluation["candidate"]), "champion": evaluation.get("champion")},
        "champion_error": evaluation.get("champion_error"),
        "test_rows": int(test_rows) if str(test_rows or "").isdigit() else None,
        "test_fingerprint": details.get("tags", {}).get("test_fingerprint"),
        "onnx": _onnx_verdict(package),
        "nfr": dict(package.get("nfr") or {}) if package else {},
        "requirements": _requirement_checks(spec, package),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: strict JSON, which a browser's ``JSON.parse`` reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def bounded_json(document: Mapping[str, Any], limit: int = TAG_MAX_CHARS) -> str:
    """``document`` as JSON in at most ``limit`` characters (a tag value): the all-metrics part goes first,
    then the thresholds, then the texts are cut; what was dropped is named under ``truncated``."""
    current = _finite(dict(document))
    text = json.dumps(current)
    for key in ("metrics", "thresholds", "onnx", "champion_error"):
        if len(text) <= limit:
            break
        if key in current:
            current[key] = None
            current["truncated"] = [*current.get("truncated", []), key]
            text = json.dumps(current)
    return text if len(text) <= limit else json.dumps({"truncated": ["everything"], "promote": current.get("promote")})


def gate_candidate(
    spec: PipelineSpec,
    registry: Registry,
    registered: Registered,
    evaluation: Evaluation,
    package: Package | None = None,
    validation: ValidationResult | None = None,
) -> GateResult:
    """Apply the promotion gate, tag the version with the verdict and its reasons, write its model card.

    The validation warnings of the training data (``validation``: the validate task's result)
    are among the reasons, and fail the gate with ``promotion.block_on_validation_warnings``.
    """
    from airflow_mlops.core.model.model_card import render_model_card

    decision = decide_promotion(evaluation["candidate"], evaluation["champion"], spec.promotion)
    details = registry.version_details(registered["name"], registered["version"])
    if evaluation.get("champion_error"):
        decision.promote = False
        decision.reasons = [
            f"current champion v{evaluation['champion_version']} could not be evaluated on this test split "
            f"({evaluation['champion_error']}); promote by hand if the candidate should replace it",
            *[r for r in decision.reasons if r != "all gates passed"],
        ]
    blocked = _packaging_reasons(spec, package)
    blocked += requirement_reasons(_requirement_checks(spec, package), spec.promotion.requirements.batch_rows)
    if blocked:
        decision.promote = False
        decision.reasons = [*blocked, *[r for r in decision.reasons if r != "all gates passed"]]
    warnings = validation_warnings.load(validation)
    warned = validation_warnings.gate_reason(warnings, spec.promotion.block_on_validation_warnings)
    if warned and spec.promotion.block_on_validation_warnings:
        decision.promote = False
        decision.reasons = [warned, *[r for r in decision.reasons if r != "all gates passed"]]
    elif warned:
        decision.reasons.append(warned)
    result: GateResult = {
        "promote": decision.promote,
        "reasons": decision.reasons,
        "metric": decision.metric,
        "candidate": decision.candidate,
        "champion": decision.champion,
        "champion_version": evaluation["champion_version"],
        "name": registered["name"],
        "version": registered["version"],
    }
    if validation is not None:
        result["validation_warnings"] = [validation_warnings.describe(w) for w in warnings[:20]]
    result["verdict"] = gate_verdict(spec, evaluation, package, decision, details)
    # The card first: a version is tagged gate=passed only once its card is published.
    card = render_model_card(spec, details, evaluation, package, result)
    registry.publish_model_card(registered["name"], registered["version"], card)
    registry.tag_version(
        registered["name"],
        registered["version"],
        {
            "gate": "passed" if decision.promote else "failed",
            "gate_reasons": "; ".join(decision.reasons)[:TAG_MAX_CHARS],
            VERDICT_TAG: bounded_json(result["verdict"]),
        },
    )
    return result


def approval_record(
    decision: str,
    user: Mapping[str, Any] | None,
    at: str,
    comment: str | None,
    run: str | None,
    timed_out: bool = False,
) -> Approval:
    """The ``approval`` tag's document: ``decision`` "approved" or "rejected", ``user`` the
    responder (Airflow's ``{"id", "name"}``; None when the deadline passed), ``at`` ISO time."""
    if decision not in ("approved", "rejected"):
        raise ValueError(f"an approval decision is 'approved' or 'rejected', not {decision!r}")
    text = (comment or "").strip()
    return {
        "decision": decision,
        "by": str(user.get("name") or user.get("id")) if user else None,
        "by_id": str(user.get("id")) if user and user.get("id") is not None else None,
        "at": at,
        "comment": text[:2000] or None,
        "timed_out": timed_out,
        "run": run,
    }


def record_approval(registry: Registry, name: str, version: str, approval: Approval) -> None:
    """Write the answer to the version (tag ``approval``); safe to repeat (the tag is set whole)."""
    registry.tag_version(name, str(version), {APPROVAL_TAG: bounded_json(dict(approval))})


def approval_of(tags: Mapping[str, str]) -> Approval | None:
    """The recorded answer of a version's tags, or None (no approval was asked, or not yet answered)."""
    raw = tags.get(APPROVAL_TAG)
    return cast(Approval, json.loads(raw)) if raw else None


def promote_candidate(
    registry: Registry,
    gate: GateResult,
    by: str,
    preflight: Callable[[], None] | None = None,
    requested_because: str | None = None,
) -> PromotionRecord:
    """Move ``champion`` to the gated version, unless the champion moved since evaluation.

    The version must load and match its recorded digests, and pass ``preflight`` (the
    serving app's check, when given) before the alias moves. A version a person rejected
    (its ``approval`` tag) is never promoted: ``PromotionRejected`` (a skip). One a person
    approved is promoted in their name: the record's ``by`` is the approver. Safe to retry or
    clear: the run that registered the version (its ``airflow.dag_id``/``airflow.run_id`` tags,
    else ``by``) promotes at most once; see ``promotion.promote_once``. The record's reason is the
    gate's reasons, then ``requested_because`` (the reason a person gave when triggering the run).
    """
    if not gate["promote"]:
        raise ValueError(f"version {gate['version']} did not pass the gate: {gate['reasons']}")
    name, version = gate["name"], str(gate["version"])
    tags = registry.client.get_model_version(name, version).tags
    run = f"{tags.get('airflow.dag_id', '')}/{tags['airflow.run_id']}" if "airflow.run_id" in tags else by
    approval = approval_of(tags)
    if approval is not None and approval.get("decision") != "approved":
        who = "nobody answered before the deadline" if approval.get("timed_out") else f"by {approval.get('by')}"
        raise PromotionRejected(
            f"not promoting {name} v{version}: rejected ({who}, at {approval.get('at')})"
            + (f": {approval['comment']}" if approval.get("comment") else "")
        )
    if approval is not None and approval.get("by"):
        by = str(approval["by"])
    reason = "; ".join(gate["reasons"]) + (f"; run triggered because: {requested_because}" if requested_because else "")
    return promote_once(registry, name, version, gate["champion_version"], reason, by, run, preflight)
