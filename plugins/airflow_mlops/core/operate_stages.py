"""Operate stages: batch scoring with the champion, prediction logging, drift monitoring."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from airflow_mlops.core import registry, settings, storage, tables
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.spec import PipelineSpec

logger = logging.getLogger(__name__)


def score_batches(spec: PipelineSpec, tracking_uri: str, uris: list[str], run_id: str) -> dict[str, Any]:
    """Score ``uris`` with the champion; write predictions and one log record per prediction.

    Each file is read, scored and logged ``spec.scoring.chunk_rows`` rows at a time (Parquet
    record batches; CSV and JSON Lines are first converted chunk by chunk to a temporary
    Parquet file, typed like ingestion types them), so memory stays bounded by the chunk
    whatever the file's size. A file passes validation whole, read column by column, before
    any of its rows is scored. Every log (one per input file, one row group per chunk) and
    every labeled-feedback copy is written under a temporary name and published only once
    all inputs are scored: a failure leaves no partial log behind.

    Batches that already carry the label (ground truth known) are also copied into the
    labeled history, so the next training run learns from them.
    """
    if not uris:
        raise ValueError(f"nothing to score for pipeline '{spec.name}': no input URIs")
    name = spec.registered_model_name
    current = registry.champion(tracking_uri, name)
    if current is None:
        # A failure, not a skip: the claimed batch stays in the lake and the run can be cleared later.
        raise LookupError(f"model '{name}' has no champion yet; run the training DAG first")
    model = registry.load_model(tracking_uri, f"models:/{name}/{current.version}")

    logged_at = dt.datetime.now(dt.UTC)
    log_folder = settings.join(settings.prediction_log_dir(spec.name), f"date={logged_at:%Y-%m-%d}")
    run_folder = settings.run_dir(spec.name, run_id, "score")
    log_uris, feedback, rows = [], [], 0
    staged: list[tuple[str, str]] = []  # (local temporary file, where it is published)
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-score-") as tmp:
        for index, uri in enumerate(uris):
            with _as_parquet(uri, spec, tmp) as path:
                labels_ok = _validate_file(path, spec)
                # Names sort by time: monitoring reads "the latest" logs by name.
                log_name = f"part-{logged_at:%Y%m%dT%H%M%S%f}-{settings.safe_segment(run_id)}-{index:04d}.parquet"
                log_path = os.path.join(tmp, f"log-{index:04d}.parquet")
                context = _LogContext(name, str(current.version), uri, logged_at)
                rows += _score_file(path, log_path, model, spec, context)
                staged.append((log_path, settings.join(log_folder, log_name)))
                log_uris.append(staged[-1][1])
                if labels_ok:
                    copy = os.path.join(tmp, f"feedback-{index:04d}.parquet")
                    shutil.copyfile(path, copy)
                    staged.append((copy, settings.join(settings.lake_dir(spec.name, "labeled"), _feedback_name(uri))))
                    feedback.append(staged[-1][1])
        for local, target in staged:
            storage.move_file(local, target)  # renamed (or uploaded) into place, never seen half written
    summary = {
        "model_name": name,
        "model_version": str(current.version),
        "rows": rows,
        "inputs": uris,
        "prediction_log_uris": log_uris,
        "labeled_feedback_uris": feedback,
    }
    storage.write_json(summary, settings.join(run_folder, "summary.json"))
    return summary


@dataclass(frozen=True)
class _LogContext:
    """What every log row of one input file shares."""

    model_name: str
    model_version: str
    source_uri: str
    logged_at: dt.datetime


def _feedback_name(uri: str) -> str:
    """The labeled-history copy is Parquet, whatever the input's format."""
    base = uri.rsplit("/", 1)[-1]
    if base.lower().endswith((".parquet", ".pq")):
        return base
    stem = base.split(".", 1)[0] or "batch"
    return f"{stem}.parquet"


@contextmanager
def _as_parquet(uri: str, spec: PipelineSpec, tmp: str) -> Iterator[str]:
    """A local Parquet file holding ``uri``'s rows: the file itself, or a chunkwise conversion.

    CSV (with ``data.source.csv``'s parsing options) and JSON Lines are read in chunks as
    ingestion reads them and cast to the declared column types.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core import ingest

    if ingest.format_of(uri, None) == "parquet":
        with storage.local_copy(uri) as path:
            yield path
        return
    source = spec.data.source.model_copy(update={"format": None, "chunk_rows": spec.scoring.chunk_rows})
    path = os.path.join(tmp, f"input-{uuid.uuid4().hex}.parquet")
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for raw in ingest.read_chunks(uri, source):
            table = pa.Table.from_pandas(ingest.cast_declared(raw, spec.declared_types, uri), preserve_index=False)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table.cast(schema))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ingest.IngestError("no data rows (only a header?)", uri)
    try:
        yield path
    finally:
        os.remove(path)


def _validate_file(path: str, spec: PipelineSpec) -> bool:
    """Validate the whole file, column by column; raise if it cannot be scored.

    Returns whether its labels are valid too (it carries the label and passes the full
    suite, label included): only then does it join the labeled history.
    """
    from airflow_mlops.core.validation import DataValidationError, validate_batch
    from airflow_mlops.core.validation_plan import parquet_source

    with parquet_source(path) as source:
        if spec.data.label not in source.columns:
            validate_batch(source, spec, require_label=False)
            return False
        try:
            validate_batch(source, spec, require_label=True)
            return True
        except DataValidationError as exc:
            # Fails without the label too? Then the batch cannot be scored: that error is raised.
            validate_batch(source, spec, require_label=False)
            logger.warning("scored batch not added to the labeled history: %s", exc)
            return False


def _score_file(path: str, out_path: str, model: Any, spec: PipelineSpec, context: _LogContext) -> int:
    """Score the Parquet file at ``path`` chunk by chunk into the log at ``out_path`` (a row group per chunk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys([spec.data.id_column, *spec.data.features.all]))
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        with open(path, "rb") as handle:
            # pre_buffer=False: pyarrow would otherwise keep every row group it read until the file closes.
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            for batch in parquet.iter_batches(batch_size=spec.scoring.chunk_rows, columns=columns):
                log = prediction_log_frame(batch.to_pandas(), model, spec, context)
                table = pa.Table.from_pandas(log, preserve_index=False)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(out_path, schema)
                writer.write_table(table.cast(schema), row_group_size=max(len(table), 1))
                rows += len(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"{context.source_uri}: no rows to score")
    return rows


def prediction_log_frame(frame: Any, model: Any, spec: PipelineSpec, context: _LogContext) -> Any:
    """The prediction log of one chunk of a batch: one row per input row, each its own request.

    Columns: request_id, row, logged_at, model_name, model_version, source_uri, the id
    column, the model inputs (``feature_frame``), prediction and (classifiers) score.
    """
    import pandas as pd

    from airflow_mlops.core.training import feature_frame

    features = feature_frame(frame, spec)
    log = pd.DataFrame(
        {
            "request_id": [uuid.uuid4().hex for _ in range(len(frame))],
            "row": np.zeros(len(frame), dtype="int64"),  # each batch row is a request of one row
            "logged_at": context.logged_at,
            "model_name": context.model_name,
            "model_version": context.model_version,
            "source_uri": context.source_uri,
            spec.data.id_column: frame[spec.data.id_column].to_numpy(),
        }
    )
    log = pd.concat([log, features.reset_index(drop=True)], axis=1)
    log["prediction"] = model.predict(features)
    if hasattr(model, "predict_proba"):
        log["score"] = model.predict_proba(features)[:, -1]
    return log


def _prediction_drift(
    spec: PipelineSpec, tracking_uri: str, name: str, version: str, reference: Any, current_log: Any
) -> Any:
    """The champion's scores on its training reference vs the scores it logged."""
    from airflow_mlops.core.drift import prediction_drift
    from airflow_mlops.core.training import feature_frame

    model = registry.load_model(tracking_uri, f"models:/{name}/{version}")
    try:
        features = feature_frame(reference, spec)
        if "score" in current_log.columns and hasattr(model, "predict_proba"):
            column, expected = "score", model.predict_proba(features)[:, -1]
        elif spec.model.task == "regression":
            column, expected = "prediction", model.predict(features)
        else:
            return None  # a classifier without scores: its labels would need a test of their own
    except (ValueError, KeyError) as exc:  # e.g. the spec changed the features since this champion
        logger.warning("no prediction drift: the champion cannot score its reference under this spec: %s", exc)
        return None
    if current_log[column].isna().all():
        return None
    return prediction_drift(
        expected,
        current_log[column].to_numpy(dtype="float64"),
        bins=spec.monitoring.bins,
        alpha=spec.monitoring.alpha,
        psi_threshold=spec.monitoring.psi_threshold,
        effect_threshold=spec.monitoring.effect_threshold,
    )


def recent_prediction_logs(spec: PipelineSpec) -> list[str]:
    """The latest ``lookback_batches`` prediction log files (partition and file names sort by time)."""
    files = storage.list_files_recursive(settings.prediction_log_dir(spec.name), (".parquet",))
    return files[-spec.monitoring.lookback_batches :]


def monitor_drift(spec: PipelineSpec, tracking_uri: str, log_uris: list[str], run_id: str) -> dict[str, Any]:
    """Compare logged features with the champion's training reference; log to MLflow."""
    import mlflow

    from airflow_mlops.core.drift import detect_drift
    from airflow_mlops.core.drift_report import render_drift_html

    name = spec.registered_model_name
    current = registry.champion(tracking_uri, name)
    if current is None:
        raise NothingToProcessError(f"model '{name}' has no champion yet; nothing to monitor")
    reference_uri = current.tags.get("reference_uri")
    if not reference_uri:
        raise LookupError(f"champion {name} v{current.version} has no reference_uri tag")
    log_uris = log_uris or recent_prediction_logs(spec)
    if not log_uris:
        raise NothingToProcessError(f"no prediction logs for pipeline '{spec.name}' to monitor")

    # Only predictions of the current champion count: once a retrained model is promoted, the
    # logs that triggered it no longer raise the same alarm on every calendar run.
    current_log = tables.read_tables(log_uris)
    current_log = current_log[current_log["model_version"].astype(str) == str(current.version)]
    if current_log.empty:
        raise NothingToProcessError(
            f"no predictions by the current champion {name} v{current.version} in {len(log_uris)} log file(s)"
        )
    reference = tables.read_table(reference_uri)
    report = detect_drift(
        reference,
        current_log,
        spec.data.features.numeric,
        spec.data.features.categorical,
        psi_threshold=spec.monitoring.psi_threshold,
        min_drifted_features=spec.monitoring.min_drifted_features,
        bins=spec.monitoring.bins,
        alpha=spec.monitoring.alpha,
        effect_threshold=spec.monitoring.effect_threshold,
    )
    output = _prediction_drift(spec, tracking_uri, name, str(current.version), reference, current_log)
    folder = settings.run_dir(spec.name, run_id, "monitor")
    report_uri = settings.join(folder, "drift_report.json")
    storage.write_json(
        {
            "current": log_uris,
            "reference": reference_uri,
            **report.as_dict(),
            "prediction_drift": asdict(output) if output else None,
        },
        report_uri,
    )
    page = render_drift_html(
        report, reference, current_log, f"{spec.name}: drift of {name} v{current.version}'s inputs"
    )
    html_uri = storage.write_bytes(page.encode("utf-8"), settings.join(folder, "drift_report.html"))

    registry.use_experiment(tracking_uri, f"{spec.name}_monitoring")
    with mlflow.start_run(run_name=run_id) as run:
        mlflow.set_tags({"model_name": name, "model_version": str(current.version), "airflow.run_id": run_id})
        mlflow.log_metrics({f"psi_{k}": v for k, v in report.scores().items()})
        mlflow.log_metrics({f"effect_{f.feature}": f.effect for f in report.features if f.effect is not None})
        mlflow.log_metrics({f"p_value_{f.feature}": f.p_value for f in report.features if f.p_value is not None})
        mlflow.log_metrics({"drifted_features": len(report.drifted_features), "current_rows": report.current_rows})
        if output is not None:
            p_value = output.p_value if output.p_value is not None else 1.0
            mlflow.log_metrics(
                {"prediction_psi": output.psi, "prediction_ks": output.effect or 0.0, "prediction_p_value": p_value}
            )
        mlflow.log_dict(report.as_dict(), "drift_report.json")
        mlflow.log_text(page, "drift_report.html")
    return {
        "drift_detected": report.drift_detected,
        "drifted_features": report.drifted_features,
        "scores": report.scores(),
        "prediction_drift": (
            {"psi": round(output.psi, 6), "ks": output.effect, "drifted": output.drifted} if output else None
        ),
        "psi_threshold": report.psi_threshold,
        "model_version": str(current.version),
        "report_uri": report_uri,
        "html_report_uri": html_uri,
        "mlflow_run_id": run.info.run_id,
    }
