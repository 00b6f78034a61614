"""Data stages of the training pipeline: ingest, validate, split.

Each stage reads URIs, writes its outputs under the run-scoped folder and returns a
small JSON-able dict (URIs, row counts, fingerprints) for XCom.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import settings, storage, tables
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.spec import PipelineSpec
from airflow_mlops.core.validation import DataValidationError, validate_batch


def ingest_labeled(spec: PipelineSpec, run_id: str) -> dict[str, Any]:
    """Gather the most recent ``window_batches`` labeled batches into one dataset."""
    history = settings.lake_dir(spec.name, "labeled")
    sources = storage.list_files(history)[-spec.data.window_batches :]
    if not sources:
        raise NothingToProcessError(
            f"no labeled batches for pipeline '{spec.name}' in {history}; "
            f"land files in {settings.landing_dir(spec.name, 'training')}"
        )
    frame = tables.read_tables(sources)
    uri = settings.join(settings.run_dir(spec.name, run_id, "ingest"), "dataset.parquet")
    tables.write_parquet(frame, uri)
    return {
        "uri": uri,
        "rows": len(frame),
        "fingerprint": tables.fingerprint_frame(frame),
        "sources": sources,
    }


def validate_dataset(spec: PipelineSpec, uri: str, run_id: str) -> dict[str, Any]:
    """Run the pipeline's Great Expectations suite; the report is written pass or fail."""
    frame = tables.read_table(uri)
    report_uri = settings.join(settings.run_dir(spec.name, run_id, "validate"), "report.json")
    try:
        outcome = validate_batch(frame, spec)
    except DataValidationError as exc:
        storage.write_json({"input": uri, **exc.report}, report_uri)
        raise DataValidationError(f"{exc}\nfull report: {report_uri}", exc.report) from None
    storage.write_json({"input": uri, **outcome.as_report()}, report_uri)
    return {
        "uri": uri,
        "report_uri": report_uri,
        "evaluated": outcome.evaluated,
        "warnings": len(outcome.warnings),
    }


def split_dataset(spec: PipelineSpec, uri: str, run_id: str) -> dict[str, Any]:
    """Split into train and test; the test split is the hold-out for the promotion gate."""
    from airflow_mlops.core.training import split_frame

    frame = tables.read_table(uri)
    train, test = split_frame(frame, spec)
    folder = settings.run_dir(spec.name, run_id, "split")
    out: dict[str, Any] = {}
    for name, part in (("train", train), ("test", test)):
        part_uri = settings.join(folder, f"{name}.parquet")
        tables.write_parquet(part, part_uri)
        out[name] = {"uri": part_uri, "rows": len(part), "fingerprint": tables.fingerprint_frame(part)}
    return out
