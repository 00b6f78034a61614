"""Release stages of the training pipeline: register, gate and promote a packaged candidate.

The seam operators/release.py calls (core/model/stages.py holds the training side). Every stage
takes the ``Registry`` (the operator's MLflow hook builds it) and returns a small typed dict for XCom
(``core.contracts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from airflow_mlops import __version__
from airflow_mlops.core.contracts import (
    DatasetRef,
    Evaluation,
    GateResult,
    Package,
    PromotionRecord,
    Registered,
    SplitRefs,
    TrainingResult,
    ValidationResult,
)
from airflow_mlops.core.data.validation import carried_warnings as validation_warnings
from airflow_mlops.core.model.gate import decide_promotion
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.core.registry.integrity import artifact_digests
from airflow_mlops.core.registry.promotion import promote_once
from airflow_mlops.spec import PipelineSpec


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
    version = registry.register(name, training["model_uri"], tags, run_id=training["run_id"])
    return {"name": name, "version": version}


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
    if evaluation.get("champion_error"):
        decision.promote = False
        decision.reasons = [
            f"current champion v{evaluation['champion_version']} could not be evaluated on this test split "
            f"({evaluation['champion_error']}); promote by hand if the candidate should replace it",
            *[r for r in decision.reasons if r != "all gates passed"],
        ]
    blocked = _packaging_reasons(spec, package)
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
    # The card first: a version is tagged gate=passed only once its card is published.
    card = render_model_card(spec, registry.version_details(registered["name"], registered["version"]),
                             evaluation, package, result)  # fmt: skip
    registry.publish_model_card(registered["name"], registered["version"], card)
    registry.tag_version(
        registered["name"],
        registered["version"],
        {"gate": "passed" if decision.promote else "failed", "gate_reasons": "; ".join(decision.reasons)},
    )
    return result


def promote_candidate(
    registry: Registry,
    gate: GateResult,
    by: str,
    preflight: Callable[[], None] | None = None,
    requested_because: str | None = None,
) -> PromotionRecord:
    """Move ``champion`` to the gated version, unless the champion moved since evaluation.

    The version must load and match its recorded digests, and pass ``preflight`` (the
    serving app's check, when given) before the alias moves. Safe to retry or clear: the
    run that registered the version (its ``airflow.dag_id``/``airflow.run_id`` tags, else
    ``by``) promotes at most once; see ``promotion.promote_once``. The record's reason is the
    gate's reasons, then ``requested_because`` (the reason a person gave when triggering the run).
    """
    if not gate["promote"]:
        raise ValueError(f"version {gate['version']} did not pass the gate: {gate['reasons']}")
    name, version = gate["name"], str(gate["version"])
    tags = registry.client.get_model_version(name, version).tags
    run = f"{tags.get('airflow.dag_id', '')}/{tags['airflow.run_id']}" if "airflow.run_id" in tags else by
    reason = "; ".join(gate["reasons"]) + (f"; run triggered because: {requested_because}" if requested_because else "")
    return promote_once(registry, name, version, gate["champion_version"], reason, by, run, preflight)
