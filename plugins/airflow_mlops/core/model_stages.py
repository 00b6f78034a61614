"""Model stages of the training pipeline: train, evaluate, register, gate, promote.

Every stage takes the MLflow tracking URI explicitly (the operator's hook supplies
it) and returns a small dict for XCom: run ids, model URIs, versions, metrics.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import registry, storage, tables
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.gate import decide_promotion
from airflow_mlops.core.spec import PipelineSpec


def train_model(
    spec: PipelineSpec,
    tracking_uri: str,
    split: dict[str, Any],
    dataset: dict[str, Any],
    lineage: dict[str, str],
    skip_if_already_trained: bool = True,
) -> dict[str, Any]:
    """Fit the spec's Pipeline on the train split and log it (with lineage) to MLflow.

    When a registered version was already trained on this exact data and spec, training
    again would only produce its twin: that is nothing to do, unless ``skip_if_already_trained``
    is False (a forced retrain).
    """
    from airflow_mlops.core.training import feature_frame, fit

    if skip_if_already_trained:
        twins = registry.versions_trained_on(
            tracking_uri, spec.registered_model_name, dataset["fingerprint"], spec.fingerprint()
        )
        if twins:
            raise NothingToProcessError(
                f"{spec.registered_model_name} v{twins[-1]} was already trained on this data "
                f"(fingerprint {dataset['fingerprint']}) with this spec; trigger with conf "
                '{"force_retrain": true} to train anyway'
            )
    train = tables.read_table(split["train"]["uri"])
    model = fit(train, spec)
    params = {
        "estimator": spec.model.estimator,
        **{f"param.{k}": v for k, v in spec.model.params.items()},
        "spec_fingerprint": spec.fingerprint(),
        "data_fingerprint": dataset["fingerprint"],
        "train_fingerprint": split["train"]["fingerprint"],
        "test_fingerprint": split["test"]["fingerprint"],
        "train_rows": split["train"]["rows"],
        "test_rows": split["test"]["rows"],
        "source_batches": len(dataset.get("sources", [])),
        "unlabeled_rows_left_out": dataset.get("unlabeled_rows", 0),
    }
    artifacts = {"data/sources.json": {"rows_by_source": dataset.get("rows_by_source", {})}}
    if dataset.get("profile_uri"):
        artifacts["data/profile.json"] = storage.read_json(dataset["profile_uri"])
    logged = registry.log_training_run(
        tracking_uri,
        experiment=spec.name,
        run_name=lineage.get("run_id", "manual"),
        model=model,
        input_example=feature_frame(train.head(50), spec),
        params=params,
        tags={f"airflow.{k}": v for k, v in lineage.items()},
        json_artifacts=artifacts,
    )
    return {"run_id": logged.run_id, "model_uri": logged.model_uri, "experiment_id": logged.experiment_id}


def evaluate_candidate(
    spec: PipelineSpec, tracking_uri: str, training: dict[str, Any], test_uri: str
) -> dict[str, Any]:
    """Metrics of the logged candidate and of the current champion on the same test split."""
    from airflow_mlops.core.training import evaluate

    test = tables.read_table(test_uri)
    candidate_model = registry.load_model(tracking_uri, training["model_uri"])
    candidate = evaluate(candidate_model, test, spec)
    mlflow_client = registry.client(tracking_uri)
    for key, value in candidate.items():
        mlflow_client.log_metric(training["run_id"], f"test_{key}", value)

    current = registry.champion(tracking_uri, spec.registered_model_name)
    champion_metrics = None
    if current is not None:
        champion_model = registry.load_model(tracking_uri, f"models:/{spec.registered_model_name}/{current.version}")
        champion_metrics = evaluate(champion_model, test, spec)
        for key, value in champion_metrics.items():
            mlflow_client.log_metric(training["run_id"], f"champion_test_{key}", value)
    return {
        "candidate": candidate,
        "champion": champion_metrics,
        "champion_version": str(current.version) if current is not None else None,
    }


def register_candidate(
    spec: PipelineSpec,
    tracking_uri: str,
    training: dict[str, Any],
    evaluation: dict[str, Any],
    dataset: dict[str, Any],
    split: dict[str, Any],
    lineage: dict[str, str],
) -> dict[str, Any]:
    """Register the candidate as a new model version, tagged with its lineage and metrics."""
    tags = {
        "spec_fingerprint": spec.fingerprint(),
        "data_fingerprint": dataset["fingerprint"],
        "train_fingerprint": split["train"]["fingerprint"],
        "test_fingerprint": split["test"]["fingerprint"],
        "reference_uri": split["train"]["uri"],
        "test_uri": split["test"]["uri"],
        **{f"airflow.{k}": v for k, v in lineage.items()},
        **{f"test_{k}": f"{v:.6f}" for k, v in evaluation["candidate"].items()},
    }
    version = registry.register(tracking_uri, spec.registered_model_name, training["model_uri"], tags)
    return {"name": spec.registered_model_name, "version": version}


def gate_candidate(
    spec: PipelineSpec, tracking_uri: str, registered: dict[str, Any], evaluation: dict[str, Any]
) -> dict[str, Any]:
    """Apply the promotion gate and tag the version with the verdict and its reasons."""
    decision = decide_promotion(evaluation["candidate"], evaluation["champion"], spec.promotion)
    if evaluation.get("champion_error"):
        decision.promote = False
        decision.reasons = [
            f"current champion v{evaluation['champion_version']} could not be evaluated on this test split "
            f"({evaluation['champion_error']}); promote by hand if the candidate should replace it",
            *[r for r in decision.reasons if r != "all gates passed"],
        ]
    registry.tag_version(
        tracking_uri,
        registered["name"],
        registered["version"],
        {"gate": "passed" if decision.promote else "failed", "gate_reasons": "; ".join(decision.reasons)},
    )
    return {**decision.as_dict(), "champion_version": evaluation["champion_version"], **registered}


def promote_candidate(tracking_uri: str, gate: dict[str, Any], by: str) -> dict[str, Any]:
    """Move ``champion`` to the gated version, unless the champion moved since evaluation."""
    if not gate["promote"]:
        raise ValueError(f"version {gate['version']} did not pass the gate: {gate['reasons']}")
    current = registry.champion(tracking_uri, gate["name"])
    current_version = str(current.version) if current is not None else None
    if current_version != gate["champion_version"]:
        raise RuntimeError(
            f"champion of '{gate['name']}' moved from {gate['champion_version']} to {current_version} "
            "while this run was evaluating; not promoting. Re-run to compare against the new champion."
        )
    return registry.promote(tracking_uri, gate["name"], gate["version"], reason="; ".join(gate["reasons"]), by=by)
