"""Operate stages: batch scoring with the champion, prediction logging, drift monitoring.

Each returns a small dict for XCom (``core.contracts``)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from typing import Any

from airflow_mlops import layout
from airflow_mlops.core.contracts import MonitorResult, PerformanceCheck, ScoreSummary
from airflow_mlops.core.data.schema_changes import apply_renames, under_learned_names
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.operations.drift.predictions import champion_prediction_drift
from airflow_mlops.core.operations.estimation import (
    assess_estimate,
    champion_calibration,
    estimate_metric_values,
)
from airflow_mlops.core.operations.performance import assess_performance, labeled_window, performance_summary
from airflow_mlops.core.operations.prediction_log.batch import LogContext
from airflow_mlops.core.operations.prediction_log.readers import champion_log, lookback_start, recent_prediction_logs
from airflow_mlops.core.operations.scoring import as_parquet, feedback_name, score_file, validate_file
from airflow_mlops.core.operations.slices import assess_slices, champion_slices, slice_metric_values
from airflow_mlops.core.registry import tracking
from airflow_mlops.core.registry.client import Registry, metric_name
from airflow_mlops.core.registry.datasets import RunDataset, files_dataset, log_run_datasets
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)


def score_batches(spec: PipelineSpec, registry: Registry, uris: list[str], run_id: str) -> ScoreSummary:
    """Score ``uris`` with the champion; write predictions and one log record per prediction.

    Each file is read, scored and logged ``spec.scoring.chunk_rows`` rows at a time (Parquet
    record batches; CSV and JSON Lines are first converted chunk by chunk to a temporary
    Parquet file, typed like ingestion types them), so memory stays bounded by the chunk
    whatever the file's size. A file passes validation whole, read column by column, before
    any of its rows is scored. Every log (one per input file, one row group per chunk) and
    every labeled-feedback copy is written under a temporary name and published only once
    all inputs are scored: a failure leaves no partial log behind.

    Batches that already carry the label (ground truth known) are also copied into the
    labeled history, so the next training run learns from them: as
    ``<input name without its data suffix>.<run id>-<input index>.parquet``, never over a
    file that exists (only a retry of the same run names the same copy; it is kept).
    """
    if not uris:
        raise ValueError(f"nothing to score for pipeline '{spec.name}': no input URIs")
    name = spec.registered_model_name
    current = registry.champion(name)
    if current is None:
        # A failure, not a skip: the claimed batch stays in the lake and the run can be cleared later.
        raise LookupError(f"model '{name}' has no champion yet; run the training DAG first")
    model = under_learned_names(tracking.load_model(registry, f"models:/{name}/{current.version}"), spec)

    logged_at = dt.datetime.now(dt.UTC)
    log_folder = layout.prediction_log_partition(spec.name, logged_at.date())
    run_folder = layout.run_dir(spec.name, run_id, "score")
    log_uris, feedback, rows = [], [], 0
    staged: list[tuple[str, str]] = []  # (local temporary file, where it is published)
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-score-") as tmp:
        for index, uri in enumerate(uris):
            with as_parquet(uri, spec, tmp) as path:
                labels_ok = validate_file(path, spec)
                # Names sort by time: monitoring reads "the latest" logs by name.
                log_name = f"part-{logged_at:%Y%m%dT%H%M%S%f}-{layout.safe_segment(run_id)}-{index:04d}.parquet"
                log_path = os.path.join(tmp, f"log-{index:04d}.parquet")
                context = LogContext(name, str(current.version), uri, logged_at)
                rows += score_file(path, log_path, model, spec, context)
                staged.append((log_path, layout.join(log_folder, log_name)))
                log_uris.append(staged[-1][1])
                if labels_ok:
                    copy = os.path.join(tmp, f"feedback-{index:04d}.parquet")
                    shutil.copyfile(path, copy)
                    target = layout.join(layout.lake_dir(spec.name, "labeled"), feedback_name(uri))
                    staged.append((copy, target))
                    feedback.append(target)
        for local, target in staged:
            if target in feedback and storage.exists(target):
                # Only scoring the same input again names the same copy: never overwrite, never add twice.
                logger.warning("labeled-history copy %s already exists; kept as it is", target)
                continue
            storage.move_file(local, target)  # renamed (or uploaded) into place, never seen half written
    summary: ScoreSummary = {
        "model_name": name,
        "model_version": str(current.version),
        "rows": rows,
        "inputs": uris,
        "prediction_log_uris": log_uris,
        "labeled_feedback_uris": feedback,
    }
    storage.write_json(summary, layout.join(run_folder, "summary.json"))
    return summary


def monitor_drift(spec: PipelineSpec, registry: Registry, log_uris: list[str], run_id: str) -> MonitorResult:
    """Compare logged features with the champion's training reference, and its logged predictions
    with the delayed labels that arrived (performance decay, and per ``evaluation.slices`` value),
    and estimate its metric from the logged scores without labels; log all of it to MLflow.

    ``retrain`` is true, with its ``retrain_reasons``, when the features drifted or the
    champion's performance on labeled predictions decayed; a decayed slice (``slice_decay``) or
    estimate (``estimated_decay``) joins the reasons with ``monitoring.retrain_on_slice_decay`` /
    ``monitoring.use_estimate``, else it is listed in ``alerts`` only.

    Long on purpose: the orchestration of one monitoring run (which logs, the champion, drift,
    performance, reports, the MLflow run); each step is a call.
    """
    name = spec.registered_model_name
    current = registry.champion(name)
    if current is None:
        raise NothingToProcessError(f"model '{name}' has no champion yet; nothing to monitor")
    reference_uri = current.tags.get("reference_uri")
    if not reference_uri:
        raise LookupError(f"champion {name} v{current.version} has no reference_uri tag")
    version = str(current.version)
    # The logs an event named are read whole; a calendar run reads the lookback window.
    start = None if log_uris else lookback_start(spec)
    log_uris = log_uris or recent_prediction_logs(spec)
    # Only predictions of the current champion count: once a retrained model is promoted, the
    # logs that triggered it no longer raise the same alarm on every calendar run.
    current_log, read_uris = champion_log(spec, log_uris, version, start)
    no_data: str | None = None  # why drift could not be measured
    if current_log.empty:
        window = f" of the last {spec.monitoring.lookback_hours:g} hours" if start is not None else ""
        no_data = (
            f"no predictions by the current champion {name} v{version} in {len(log_uris)} log file(s){window}"
            if log_uris
            else f"no prediction logs for pipeline '{spec.name}' to monitor"
        )
        if not storage.list_files_recursive(layout.labels_dir(spec.name)):
            raise NothingToProcessError(no_data)
    model = under_learned_names(tracking.load_model(registry, f"models:/{name}/{version}"), spec)
    labeled = labeled_window(spec, current)
    performance = assess_performance(spec, current, model, labeled)
    if current_log.empty and performance is None:
        raise NothingToProcessError(f"{no_data}, and no delayed labels of its predictions")
    if current_log.empty:
        # Nothing to compare for drift; the delayed labels are still judged.
        logger.warning("%s: drift not measured, performance judged on delayed labels", no_data)
    report, reference, output = _measure_drift(spec, model, reference_uri, current_log)
    tested_slices = champion_slices(registry, current) if spec.evaluation.slices else None
    slices = assess_slices(spec, labeled[0], model, tested_slices)
    estimate = assess_estimate(spec, current, model, champion_calibration(registry, current), current_log, labeled[0])
    reasons = [
        *(["drift"] if report.drift_detected else []),
        *(["performance_decay"] if performance and performance["decayed"] else []),
    ]
    alerts: list[str] = []
    for reason, check in (("slice_decay", slices), ("estimated_decay", estimate)):
        if check is not None and check["decayed"]:
            (reasons if check["retrain"] else alerts).append(reason)
    folder = layout.run_dir(spec.name, run_id, "monitor")
    report_uri = layout.join(folder, "drift_report.json")
    storage.write_json(
        {
            "current": read_uris,
            "lookback_start": start.isoformat() if start is not None else None,
            "drift_measured": no_data is None,
            "no_drift_data": no_data,
            "reference": reference_uri,
            **report.as_dict(),
            "prediction_drift": asdict(output) if output else None,
            "performance": performance,
            "slices": slices,
            "estimate": estimate,
            "alerts": alerts,
            "retrain_reasons": reasons,
        },
        report_uri,
    )
    checks = {"performance": performance, "slices": slices, "estimate": estimate}
    page = _drift_page(spec, f"{name} v{version}", report, reference, current_log, no_data, checks)
    html_uri = storage.write_bytes(page.encode("utf-8"), layout.join(folder, "drift_report.html"))
    decisions = {"retrain": ",".join(reasons) or "no", "alerts": ",".join(alerts) or "no"}
    mlflow_run_id = _log_monitoring_run(spec, registry, run_id, current, report, output, checks, decisions, page)
    log_run_datasets(registry, mlflow_run_id, _monitored_datasets(spec, current, reference_uri, current_log, read_uris))
    return {
        "drift_detected": report.drift_detected,
        "drift_measured": no_data is None,
        "current_rows": report.current_rows,
        "drifted_features": report.drifted_features,
        "scores": report.scores(),
        "prediction_drift": (
            {"psi": round(output.psi, 6), "ks": output.effect, "drifted": output.drifted} if output else None
        ),
        "psi_threshold": report.psi_threshold,
        "performance": performance_summary(performance),
        "performance_decay": bool(performance and performance["decayed"]),
        "slice_decay": bool(slices and slices["decayed"]),
        "decayed_slices": slices["decayed_slices"] if slices else [],
        "estimate": estimate,
        "alerts": alerts,
        "retrain": bool(reasons),
        "retrain_reasons": reasons,
        "model_version": version,
        "report_uri": report_uri,
        "html_report_uri": html_uri,
        "mlflow_run_id": mlflow_run_id,
        "reference_uri": reference_uri,
        "current_uris": list(read_uris),
    }


def _monitored_datasets(
    spec: PipelineSpec, champion: Any, reference_uri: str, current_log: Any, read_uris: list[str]
) -> list[RunDataset]:
    """The monitoring run's MLflow datasets: the champion's training data (``reference``, the digest
    its version was tagged with) and the prediction logs read (``current``, fingerprinted here)."""
    digest = str(champion.tags.get("train_fingerprint") or "unknown")
    reference = RunDataset(f"{spec.name}.train", reference_uri, digest, "reference")
    if current_log.empty:
        return [reference]
    fingerprint = tables.fingerprint_frame(current_log)
    return [reference, files_dataset(f"{spec.name}.predictions", read_uris, fingerprint, "current", len(current_log))]


def _measure_drift(spec: PipelineSpec, model: Any, reference_uri: str, current_log: Any) -> tuple[Any, Any, Any]:
    """The feature drift report, the reference it was measured against, and the prediction drift
    (None when it cannot be measured). With no logged predictions: an empty report, no reference read."""
    from airflow_mlops.core.operations.drift.detect import DriftReport, detect_drift
    from airflow_mlops.core.operations.drift.statistics import feature_thresholds, thresholds

    monitoring = spec.monitoring
    if current_log.empty:
        report = DriftReport(
            drift_detected=False,
            drifted_features=[],
            min_drifted_features=monitoring.min_drifted_features,
            reference_rows=0,
            current_rows=0,
            alpha=monitoring.alpha,
            thresholds=thresholds(monitoring),
        )
        return report, current_log.iloc[:0], None
    reference = apply_renames(tables.read_table(reference_uri), spec)  # a champion from before data.renamed
    report = detect_drift(
        reference,
        current_log,
        spec.data.features.numeric,
        spec.data.features.categorical,
        min_drifted_features=monitoring.min_drifted_features,
        bins=monitoring.bins,
        alpha=monitoring.alpha,
        per_feature=feature_thresholds(monitoring),
        **thresholds(monitoring),
    )
    return report, reference, champion_prediction_drift(spec, model, reference, current_log)


def _drift_page(
    spec: PipelineSpec,
    model: str,
    report: Any,
    reference: Any,
    current_log: Any,
    no_data: str | None,
    checks: dict[str, Any],
) -> str:
    """The monitoring run's HTML report, titled by what was (or could not be) measured."""
    from airflow_mlops.core.operations.drift.report import render_drift_html

    measured = f" (not measured: {no_data})" if no_data else f" ({report.current_rows:,} logged predictions)"
    title = f"{spec.name}: drift of {model}'s inputs" + measured
    shown = {key: dict(check) if check is not None else None for key, check in checks.items()}
    return render_drift_html(
        report, reference, current_log, title, performance=shown["performance"], slices=shown["slices"],
        estimate=shown["estimate"],
    )  # fmt: skip


def _log_monitoring_run(
    spec: PipelineSpec,
    registry: Registry,
    run_id: str,
    current: Any,
    report: Any,
    output: Any,
    checks: dict[str, Any],
    decisions: dict[str, str],
    page: str,
) -> str:
    """One MLflow run of the monitoring experiment with every score, the decisions (tags ``retrain``
    and ``alerts``), the checks (``performance.json``, ``slices.json``, ``estimate.json``) and both reports.

    A retry logs a second run: runs are records of what was measured, nothing reads "the" run.
    """
    name = spec.registered_model_name
    experiment_id = registry.use_experiment(f"{spec.name}_monitoring")
    tags = {"model_name": name, "model_version": str(current.version), "airflow.run_id": run_id}
    mlflow_run_id = registry.create_run(experiment_id, run_id, tags)
    performance: PerformanceCheck | None = checks["performance"]
    with registry.ending(mlflow_run_id):
        # Column names may hold characters MLflow refuses in metric names (parentheses, ...).
        key = metric_name
        metrics = {key(f"psi_{k}"): v for k, v in report.scores().items()}
        metrics.update({key(f"effect_{f.feature}"): f.effect for f in report.features if f.effect is not None})
        metrics.update({key(f"p_value_{f.feature}"): f.p_value for f in report.features if f.p_value is not None})
        metrics.update({key(f"{n}_{f.feature}"): v for f in report.features for n, v in f.shifts.items() if n != "psi"})
        metrics.update({"drifted_features": len(report.drifted_features), "current_rows": report.current_rows})
        if output is not None:
            p_value = output.p_value if output.p_value is not None else 1.0
            metrics.update(
                {"prediction_psi": output.psi, "prediction_ks": output.effect or 0.0, "prediction_p_value": p_value}
            )
            metrics.update({f"prediction_{name}": value for name, value in output.shifts.items() if name != "psi"})
        if performance is not None:
            metrics.update(
                {
                    "labeled_rows": performance["labeled_rows"],
                    "performance_decay": float(performance["decayed"]),
                    **{f"labeled_{key}": value for key, value in performance["metrics"].items()},
                    **({"labeled_metric_drop": performance["drop"]} if performance["drop"] is not None else {}),
                }
            )
        metrics.update(slice_metric_values(checks["slices"]))
        metrics.update(estimate_metric_values(checks["estimate"]))
        registry.log_batch(mlflow_run_id, metrics=metrics, tags=decisions)
        for part, check in checks.items():
            if check is not None:
                registry.client.log_dict(mlflow_run_id, dict(check), f"{part}.json")
        registry.client.log_dict(mlflow_run_id, report.as_dict(), "drift_report.json")
        registry.client.log_text(mlflow_run_id, page, "drift_report.html")
    return mlflow_run_id
