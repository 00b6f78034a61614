"""Model stages of the training pipeline: plan and run trials, select and refit, train,
evaluate, package.

Registration, the gate and promotion are in ``core.model.release``.

Every stage takes the ``Registry`` (the operator's MLflow hook builds it) and returns a small
typed dict for XCom (``core.contracts``): run ids, model URIs, versions, metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_mlops import __version__
from airflow_mlops.core.contracts import (
    DatasetRef,
    Evaluation,
    Package,
    SplitPart,
    SplitRefs,
    TrainingResult,
    Trial,
    TrialResult,
)
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.registry import tracking
from airflow_mlops.core.registry.client import Registry, metric_name
from airflow_mlops.spec import PipelineSpec


def _training_params(spec: PipelineSpec, dataset: DatasetRef, split: SplitRefs) -> dict[str, Any]:
    """Lineage parameters of a training run: what data and spec it saw."""
    return {
        "spec_fingerprint": spec.fingerprint(),
        "training_fingerprint": spec.training_fingerprint(),  # what the code-change watcher compares
        "data_fingerprint": dataset["fingerprint"],
        **{f"{name}_fingerprint": part["fingerprint"] for name, part in _parts(split).items()},
        **{f"{name}_rows": part["rows"] for name, part in _parts(split).items()},
        "source_batches": len(dataset.get("sources", [])),
        "unlabeled_rows_left_out": dataset.get("unlabeled_rows", 0),
        "duplicates_dropped": dataset.get("duplicates_dropped", 0),
        "batches_skipped_schema": dataset.get("batches_skipped_schema", 0),
        # Files this run's landing claims delivered, and how many of them it did not read (why: sources.json).
        "claimed_files": len(dataset.get("claimed_sources", [])) + len(dataset.get("claimed_left_out", {})),
        "claimed_files_left_out": len(dataset.get("claimed_left_out", {})),
    }


def _parts(split: SplitRefs) -> dict[str, SplitPart]:
    """The parts the split has (validation only with split.ratios.validation), by name, in order."""
    parts: Mapping[str, Any] = split
    return {name: parts[name] for name in ("train", "validation", "test") if name in parts}


def plan_trials(
    spec: PipelineSpec,
    registry: Registry,
    dataset: DatasetRef,
    split: SplitRefs,
    lineage: dict[str, str],
    skip_if_already_trained: bool = True,
    run_name: str | None = None,
) -> list[Trial]:
    """Open the parent MLflow run and list the trials to map over (one dict per trial).

    When a registered version was already trained on this exact data and spec, training
    again would only produce its twin: that is nothing to do (the step cache), unless
    ``skip_if_already_trained`` is False (a forced retrain). ``run_name`` names the parent run
    for people (``core.registry.runs.training_run_name``; default: the Airflow run id); the
    lineage tags (``airflow.run_id``, ...) are what finds it again.
    """
    from airflow_mlops.core.model.tuning import expand_trials

    if skip_if_already_trained and spec.model.cache:
        twins = registry.versions_trained_on(
            spec.registered_model_name, dataset["fingerprint"], spec.fingerprint(), __version__
        )
        if twins:
            raise NothingToProcessError(
                f"{spec.registered_model_name} v{twins[-1]} was already trained on this data "
                f"(fingerprint {dataset['fingerprint']}) with this spec; trigger with force_retrain "
                '(the trigger form\'s checkbox, or conf {"force_retrain": true}) to train anyway',
                note=f"already trained on this data ({spec.registered_model_name} v{twins[-1]}); use force_retrain",
            )
    trials = expand_trials(spec)
    if len(trials) > 1 and "validation" not in split:
        raise ValueError(
            f"{len(trials)} trials need a validation split to choose from: add split.ratios.validation (e.g. 0.15)"
        )
    if "validation" in split and not split["validation"]["rows"]:
        raise ValueError(
            "the validation split is empty: too few rows or keys for split.ratios.validation; land more data "
            "or raise the ratio"
        )
    parent_run_id, experiment_id = registry.start_parent_run(
        spec.name,
        run_name=run_name or lineage.get("run_id", "manual"),
        tags={**{f"airflow.{k}": v for k, v in lineage.items()}, "trials": str(len(trials))},
    )
    # trial_count: how many mapped trial tasks there are, for the thread cap (core.model.threads).
    return [Trial(**trial, parent_run_id=parent_run_id, experiment_id=experiment_id, trial_count=len(trials))
            for trial in trials]  # fmt: skip


def trial_cache_key(spec: PipelineSpec, trial: Trial, split: SplitRefs) -> str:
    """What a trial's result depends on: its data, its estimator and params, the parts of the
    spec that shape features and metrics, and the code version."""
    import hashlib
    import json

    relevant = {
        "splits": {name: part["fingerprint"] for name, part in _parts(split).items() if name != "test"},
        "estimator": trial["estimator"],
        "params": trial["params"],
        "task": spec.model.task,
        "seed": spec.model.seed,
        "preprocessing": spec.model.preprocessing.model_dump(mode="json"),
        "cleaning": spec.cleaning.model_dump(mode="json"),
        "features": spec.data.features.model_dump(mode="json"),
        "label": spec.data.label,
        "code_version": __version__,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:24]


def run_trial(
    spec: PipelineSpec,
    registry: Registry,
    trial: Trial,
    split: SplitRefs,
    lineage: dict[str, str],
    threads: int | None = None,
) -> TrialResult:
    """Fit one trial on the train split, score it on the validation split, log it as a child run.

    With ``model.cache`` a trial that already ran with the same cache key (same split
    fingerprints, trial, relevant spec sections and code version) is not fitted again: its
    metrics are reused and the new child run points at the earlier one (``cached_from``).
    ``threads`` caps the fit's BLAS/OpenMP threads (``core.model.threads``) and is logged as the
    child run's ``threads`` param.
    """
    import contextlib
    import time

    from airflow_mlops.core.model.threads import limit_threads
    from airflow_mlops.core.model.training import evaluate, fit

    key = trial_cache_key(spec, trial, split)
    cached = registry.find_cached_trial(trial["experiment_id"], key) if spec.model.cache else None
    tags = {"trial": str(trial["trial"]), "candidate": trial["candidate"], "cache_key": key,
            **{f"airflow.{k}": v for k, v in lineage.items()}}  # fmt: skip
    if cached is not None:
        metrics, fit_seconds = cached["metrics"], 0.0
        tags["cached_from"] = cached["run_id"]
    else:
        with limit_threads(threads) if threads is not None else contextlib.nullcontext():
            started = time.perf_counter()
            model = fit(tables.read_table(split["train"]["uri"]), spec, trial["estimator"], trial["params"])
            fit_seconds = time.perf_counter() - started
            validation = split.get("validation")
            metrics = evaluate(model, tables.read_table(validation["uri"]), spec) if validation else {}
    params = {"estimator": trial["estimator"], **{f"param.{k}": v for k, v in trial["params"].items()}}
    if threads is not None:
        params["threads"] = threads
    run_id = registry.log_child_run(
        trial["experiment_id"],
        trial["parent_run_id"],
        run_name=trial["label"],
        params=params,
        metrics={**{f"val_{k}": v for k, v in metrics.items()}, "fit_seconds": fit_seconds},
        tags=tags,
    )
    return {
        "trial": trial["trial"],
        "label": trial["label"],
        "candidate": trial["candidate"],
        "estimator": trial["estimator"],
        "params": trial["params"],
        "parent_run_id": trial["parent_run_id"],
        "experiment_id": trial["experiment_id"],
        "run_id": run_id,
        "metrics": metrics,
        "fit_seconds": round(fit_seconds, 3),
        "cached_from": cached["run_id"] if cached else None,
        "threads": threads,
    }


def select_and_refit(
    spec: PipelineSpec,
    registry: Registry,
    results: list[TrialResult],
    dataset: DatasetRef,
    split: SplitRefs,
    lineage: dict[str, str],
) -> TrainingResult:
    """Pick the best trial on the validation split, refit it, and log the model on the parent run.

    The winner is refit on train + validation (``model.refit_on_validation``) so the model
    that meets the hold-out test learned from every row it may see.

    Long on purpose: one sequence (choose, refit, log, record) over the same run and frames; split
    further, its helpers would pass each other most of its locals.
    """
    import pandas as pd

    from airflow_mlops.core.model.features import InputContract
    from airflow_mlops.core.model.raw_inputs import wrap
    from airflow_mlops.core.model.training import fit
    from airflow_mlops.core.model.tuning import select_best

    if not results:
        raise ValueError("no trial results to choose from")
    results = sorted(results, key=lambda r: r["trial"])
    parent_run_id = results[0]["parent_run_id"]
    try:
        metric = spec.selection_metric
        winner = select_best(results, metric) if len(results) > 1 else results[0]
        train = tables.read_table(split["train"]["uri"])
        parts = [train]
        if spec.model.refit_on_validation and "validation" in split:
            parts.append(tables.read_table(split["validation"]["uri"]))
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else train
        model = fit(frame, spec, winner["estimator"], winner["params"])
        leaderboard = [
            {"trial": r["trial"], "label": r["label"], "run_id": r["run_id"], "metrics": r["metrics"],
             "fit_seconds": r["fit_seconds"]}
            for r in results
        ]  # fmt: skip
        artifacts: dict[str, Any] = {
            "data/sources.json": {
                "rows_by_source": dataset.get("rows_by_source", {}),
                "duplicates_by_source": dataset.get("duplicates_by_source", {}),
                "skipped_schema": dataset.get("skipped_schema", {}),
                "claimed_left_out": dataset.get("claimed_left_out", {}),
            },
            "tuning/trials.json": {"selection_metric": metric, "winner": winner["trial"], "trials": leaderboard},
        }
        if dataset.get("profile_uri"):
            artifacts["data/profile.json"] = storage.read_json(dataset["profile_uri"])
        params = {
            "estimator": winner["estimator"],
            **{f"param.{k}": v for k, v in winner["params"].items()},
            "winner_trial": winner["label"],
            "trials": len(results),
            "refit_rows": len(frame),
            **_training_params(spec, dataset, split),
        }
        metrics = {f"val_{k}": v for k, v in winner["metrics"].items()}
        logged = tracking.log_training_run(
            registry,
            experiment=spec.name,
            run_name=lineage.get("run_id", "manual"),
            # What is registered takes the user's raw rows (the input contract inside it).
            model=wrap(model, InputContract.from_spec(spec)),
            input_example=train[spec.data.features.all].head(50),
            params=params,
            tags={"best_trial_run_id": winner["run_id"]},
            metrics=metrics,
            json_artifacts=artifacts,
            run_id=parent_run_id,
        )
    except Exception:
        registry.finish_run(parent_run_id, "FAILED")
        raise
    return {
        "run_id": logged.run_id,
        "model_uri": logged.model_uri,
        "experiment_id": logged.experiment_id,
        "winner": {
            "trial": winner["trial"],
            "label": winner["label"],
            "estimator": winner["estimator"],
            "params": winner["params"],
            "metrics": winner["metrics"],
            "run_id": winner["run_id"],
        },
        "trials": len(results),
    }


def train_model(
    spec: PipelineSpec,
    registry: Registry,
    split: SplitRefs,
    dataset: DatasetRef,
    lineage: dict[str, str],
    skip_if_already_trained: bool = True,
    threads: int | None = None,
    run_name: str | None = None,
) -> TrainingResult:
    """``plan_trials``, every ``run_trial`` and ``select_and_refit`` in this process (the DAG
    maps the trials over tasks instead): for scripts, tests and the plain-script benchmark.
    ``threads`` is passed to each trial (the caller caps the selection's refit)."""
    trials = plan_trials(spec, registry, dataset, split, lineage, skip_if_already_trained, run_name)
    try:
        results = [run_trial(spec, registry, trial, split, lineage, threads) for trial in trials]
    except Exception:
        registry.close_run_if_open(trials[0]["parent_run_id"])
        raise
    return select_and_refit(spec, registry, results, dataset, split, lineage)


def evaluate_candidate(spec: PipelineSpec, registry: Registry, training: TrainingResult, test_uri: str) -> Evaluation:
    """Metrics of the logged candidate and of the current champion on the same test split.

    Also logged on the candidate's run: metrics per ``evaluation.slices`` value
    (``evaluation/slices.json`` and ``slice.<column>.<value>.<metric>`` metrics), the scores'
    calibration (``core.model.calibration``: ``evaluation/calibration.json``), permutation
    feature importance and, with ``evaluation.plots``, the plots under ``evaluation/``.
    """
    import tempfile

    from airflow_mlops.core.data.schema_changes import under_learned_names
    from airflow_mlops.core.model.calibration import evaluate_calibration, log_calibration
    from airflow_mlops.core.model.evaluation import permutation_importance, render_plots, slice_metrics
    from airflow_mlops.core.model.training import evaluate

    test = tables.read_table(test_uri)
    candidate_model = tracking.load_model(registry, training["model_uri"])
    candidate = evaluate(candidate_model, test, spec)
    mlflow_client = registry.client
    run_id = training["run_id"]
    for key, value in candidate.items():
        mlflow_client.log_metric(run_id, f"test_{key}", value)

    slices = slice_metrics(candidate_model, test, spec)
    for column, per_value in slices.items():
        for slice_value, row in per_value.items():
            for key, number in row.items():
                if key != "rows":
                    name = metric_name(f"slice.{column}.{slice_value}.{key}")
                    mlflow_client.log_metric(run_id, name, number)
    log_calibration(registry, run_id, evaluate_calibration(candidate_model, test, spec))
    importance = permutation_importance(candidate_model, test, spec)
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-eval-") as folder:
        for name, content in (("slices.json", slices), ("feature_importance.json", importance)):
            path = f"{folder}/{name}"
            storage.write_json(content, path)
            mlflow_client.log_artifact(run_id, path, "evaluation")
        if spec.evaluation.plots:
            for path in render_plots(candidate_model, test, spec, importance, folder):
                mlflow_client.log_artifact(run_id, path, "evaluation")

    current = registry.champion(spec.registered_model_name)
    champion_metrics, champion_error = None, None
    if current is not None:
        try:
            champion_model = tracking.load_model(registry, f"models:/{spec.registered_model_name}/{current.version}")
            champion_metrics = evaluate(under_learned_names(champion_model, spec), test, spec)
        except (ValueError, KeyError, TypeError, tracking.UntrustedModelError) as exc:
            # E.g. the spec dropped a feature the champion needs: the gate fails and says so.
            champion_error = f"{type(exc).__name__}: {exc}"[:500]
        for key, value in (champion_metrics or {}).items():
            mlflow_client.log_metric(run_id, f"champion_test_{key}", value)
    return {
        "candidate": candidate,
        "champion": champion_metrics,
        "champion_error": champion_error,
        "champion_version": str(current.version) if current is not None else None,
        "slices": slices,
        "importance": dict(list(importance.items())[:10]),
    }


def package_candidate(spec: PipelineSpec, registry: Registry, training: TrainingResult, test_uri: str) -> Package:
    """Export the candidate to ONNX, check parity with scikit-learn on the test split, log both; measure
    its latency, size and memory (``core.model.footprint``: ``nfr_*`` metrics, the result's ``nfr``).

    Never raises for a model without an ONNX form: the result says why, and the gate
    decides (``packaging.onnx: required`` fails it, ``optional`` does not; a latency or memory
    requirement fails without a graph to measure). Safe to retry: it logs the same artifacts again.
    """
    import tempfile

    from airflow_mlops.core.model.footprint import measure
    from airflow_mlops.core.model.packaging import OnnxExportError, export_onnx, onnx_parity

    policy, run_id, mlflow_client = spec.packaging.onnx, training["run_id"], registry.client
    result: Package = {"onnx_uri": None, "parity": None, "error": None, "policy": policy}
    onnx_bytes, test = None, tables.read_table(test_uri) if policy != "off" else None
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-onnx-") as folder:
        model_dir = registry.download(training["model_uri"], f"{folder}/model")
        if test is not None:
            model = tracking.load_model(registry, training["model_uri"])
            try:
                onnx_bytes = export_onnx(model, spec)
                parity = onnx_parity(model, onnx_bytes, test, spec).as_dict()
            except OnnxExportError as exc:
                mlflow_client.set_tag(run_id, "onnx_error", str(exc)[:500])
                onnx_bytes, result["error"] = None, str(exc)[:2000]
            else:
                storage.write_bytes(onnx_bytes, f"{folder}/onnx/model.onnx")
                storage.write_json(parity, f"{folder}/onnx/parity.json")
                mlflow_client.log_artifacts(run_id, f"{folder}/onnx", "onnx")
                mlflow_client.log_metric(run_id, "onnx_max_abs_diff", parity["max_abs_diff"])
                result["onnx_uri"], result["parity"] = f"runs:/{run_id}/onnx/model.onnx", parity
        no_graph = "packaging.onnx is off" if test is None else f"the export failed ({str(result['error'])[:200]})"
        figures, result["nfr_unmeasured"] = measure(spec, model_dir, onnx_bytes, test, no_graph)
    for name, value in figures.items():
        mlflow_client.log_metric(run_id, f"nfr_{name}", value)
    result["nfr"] = figures
    return result
