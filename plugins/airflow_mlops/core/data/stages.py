"""Data stages of the training pipeline: ingest, validate, split.

Each stage reads URIs, writes its outputs under the run-scoped folder and returns a
small JSON-able dict (URIs, row counts, fingerprints) for XCom: ``core.contracts``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from airflow_mlops import layout
from airflow_mlops.core.contracts import DatasetRef, SplitPart, SplitRefs, SqlSourceRead, ValidationResult
from airflow_mlops.core.data.quarantine import quarantine_file
from airflow_mlops.core.data.validation.plan import parquet_source
from airflow_mlops.core.data.validation.suite import DataValidationError, validate_batch
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)


def source_uris(spec: PipelineSpec, ds: str | None = None, claimed: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The files a training run reads: the spec's source, or the run's claimed lake files plus the
    newest ``data.window_batches`` batches landed before them (``core.data.lake_window``)."""
    from airflow_mlops.core.data.lake_window import select
    from airflow_mlops.core.data.sources import SUFFIXES, resolve_uris

    if spec.data.source.uri:
        return resolve_uris(spec.data.source.uri.replace("{ds}", ds or ""))
    history = layout.lake_dir(spec.name, "labeled")
    sources = select(history, tuple(SUFFIXES), spec.data.window_batches, claimed).uris
    if not sources:
        raise NothingToProcessError(
            f"no labeled batches for pipeline '{spec.name}' in {history}; "
            f"land files in {layout.landing_dir(spec.name, 'training')}"
        )
    return sources


def _claimed_left_out(
    spec: PipelineSpec, claimed: list[str] | tuple[str, ...], read: list[str], skipped: dict[str, list[str]]
) -> dict[str, str]:
    """The run's claimed files that it did not train on, each with the reason."""
    out: dict[str, str] = {}
    for uri in dict.fromkeys(claimed):
        if uri in skipped:
            out[uri] = f"it lacks {skipped[uri]}, which the spec now needs (a batch from before the spec added them)"
        elif uri in read:
            continue
        elif spec.data.source.uri:
            out[uri] = "the spec reads data.source.uri, not the lake"
        elif spec.data.source.sql is not None and not spec.data.source.sql.watermark_column:
            out[uri] = "the spec reads data.source.sql in full, not the lake"
        elif not storage.exists(uri):
            out[uri] = "it is no longer in the lake (quarantined or removed since it was claimed)"
        else:
            out[uri] = f"it is not a labeled batch of {layout.lake_dir(spec.name, 'labeled')}"
    return out


def ingest_labeled(
    spec: PipelineSpec,
    run_id: str,
    ds: str | None = None,
    sql_engine: Any = None,
    claimed: list[str] | tuple[str, ...] = (),
) -> DatasetRef:
    """Read the sources (chunked) into one run-scoped dataset plus its profile.

    ``claimed``: the lake files of the run's landing claims (``acknowledge_claims``). Every one
    is read, with the newest ``data.window_batches`` batches landed before them as history;
    a claimed file that is not read is listed with the reason in ``claimed_left_out`` (and
    logged). Without claims (a calendar or drift run) the newest ``window_batches`` are read.

    Every file is read; each that cannot be ingested is quarantined with the error (logged with
    where it went), and the run then fails naming all of them: nothing downstream runs, and
    the next run no longer reads those files. Rows read twice
    (``cleaning.deduplicate``, on by default) are counted in ``duplicates_dropped``; batches
    from before the spec added a column are left out and counted in ``batches_skipped_schema``
    (see ``core.data.schema_changes``).

    A ``data.source.sql`` source is read through ``sql_engine`` (a SQLAlchemy engine the
    operator opens from the Airflow connection) into Parquet first (``core.data.sql_source``).
    """
    from airflow_mlops.core.data.ingest import ingest
    from airflow_mlops.core.data.sources import IngestError

    def set_aside(uri: str, error: IngestError) -> str:
        where = quarantine_file(spec.name, uri, run_id, {"stage": "ingest", "error": str(error)})
        logger.warning("rejected %s, quarantined at %s: %s", uri, where, error.reason)
        return where

    folder = layout.run_dir(spec.name, run_id, "ingest")
    sql_read: SqlSourceRead | None = None
    if spec.data.source.sql is not None:
        from airflow_mlops.core.data.sql_source import read_sql_source

        uris, sql_read = read_sql_source(spec, sql_engine, layout.join(folder, "sql_snapshot.parquet"), claimed=claimed)
    else:
        uris = source_uris(spec, ds, claimed)
    try:
        result = ingest(spec, uris, layout.join(folder, "dataset.parquet"), on_bad_file=set_aside)
    except IngestError as exc:
        if sql_read is None or sql_read["watermark_column"]:
            raise  # files, or lake batches of an incremental SQL source: named like landed files
        raise IngestError(exc.reason, f"{sql_read['source']} read into {exc.uri}") from None
    profile_uri = storage.write_json(result.profile, layout.join(folder, "profile.json"))
    left_out = _claimed_left_out(spec, claimed, result.sources, result.skipped_schema)
    for uri, why in left_out.items():
        logger.warning("claimed file %s was not trained on: %s", uri, why)
    dataset: DatasetRef = {
        "uri": result.uri,
        "rows": result.rows,
        "unlabeled_rows": result.unlabeled_rows,
        "duplicates_dropped": result.duplicates_dropped,
        "fingerprint": result.fingerprint,
        "profile_uri": profile_uri,
        "sources": result.sources,
        "rows_by_source": result.rows_by_source,
        "duplicates_by_source": result.duplicates_by_source,
        "batches_skipped_schema": len(result.skipped_schema),
        "skipped_schema": result.skipped_schema,
        "claimed_sources": [uri for uri in dict.fromkeys(claimed) if uri in result.sources],
        "claimed_left_out": left_out,
        # What the landed-batch checks of validation judge (core.data.validation.batches): claimed files only.
        "labeled_by_source": {u: n for u, n in result.labeled_by_source.items() if u in claimed},
        "classes_by_source": {u: c for u, c in result.classes_by_source.items() if u in claimed},
    }
    if sql_read is not None:
        dataset["sql"] = sql_read
    return dataset


def validate_dataset(
    spec: PipelineSpec, dataset: DatasetRef, run_id: str, reference_profile: dict[str, Any] | None = None
) -> ValidationResult:
    """Run the pipeline's Great Expectations suite on the window, and judge each landed batch
    alone (``core.data.validation.batches``); the report is written pass or fail.

    With ``validation.infer.enabled`` and a ``reference_profile`` the suite also holds the
    expectations inferred from it (see ``core.data.validation.inferred``).

    Each batch the run claimed is also judged on its own (rows, label classes, the suite on
    its rows); on a window failure every batch is. The batches that fail are quarantined with
    their report, so the next run trains without them, and the run fails. Warnings of the
    landed batches are in ``batch_warnings`` (and counted in ``warnings``).
    """
    from airflow_mlops.core.data.validation.batches import judge_batches
    from airflow_mlops.core.data.validation.inferred import infer_expectations

    inferred = (
        infer_expectations(reference_profile, spec) if spec.validation.infer.enabled and reference_profile else []
    )
    folder = layout.run_dir(spec.name, run_id, "validate")
    report_uri = layout.join(folder, "report.json")
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-docs-") as docs:
        failed: DataValidationError | None = None
        try:
            with parquet_source(dataset["uri"]) as source:  # read column by column: memory stays at one column
                outcome = validate_batch(source, spec, docs_dir=docs, extra=inferred)
        except DataValidationError as exc:
            failed = exc
        verdicts = judge_batches(spec, dataset, run_id, inferred, window_failed=failed is not None)
        for uri, warnings in verdicts.warnings.items():
            logger.warning("landed batch %s: %s", uri, "; ".join(warnings))
        culprits = list(verdicts.quarantined.values())
        for uri, where in verdicts.quarantined.items():
            logger.warning("rejected %s, quarantined at %s: %s", uri, where, "; ".join(verdicts.reasons[uri]))
        if failed is not None:
            docs_uri = _publish_folder(docs, layout.join(folder, "data_docs"))
            report = {"input": dataset["uri"], "quarantined": culprits, "data_docs": docs_uri, **failed.report}
            storage.write_json({**report, "batch_warnings": verdicts.warnings}, report_uri)
            where = (
                f"\nquarantined: {culprits}\n{verdicts.describe()}"
                if culprits
                else "\nno single batch fails alone; nothing quarantined"
            )
            raise DataValidationError(
                f"{failed}\nfull report: {report_uri}\nGX Data Docs: {docs_uri}{where}", failed.report
            ) from None
    report = {"input": dataset["uri"], "inferred": len(inferred), **outcome.as_report()}
    report["batch_warnings"] = verdicts.warnings
    if verdicts.quarantined:
        report.update(success=False, quarantined=culprits, batch_failures=verdicts.reasons)
        storage.write_json(report, report_uri)
        raise DataValidationError(
            f"data validation failed for pipeline '{spec.name}': {len(culprits)} landed batch(es) fail on their "
            f"own (the window passes):\n{verdicts.describe()}\nfull report: {report_uri}",
            report,
        )
    storage.write_json(report, report_uri)
    return {
        "uri": dataset["uri"],
        "report_uri": report_uri,
        "evaluated": outcome.evaluated,
        "inferred": len(inferred),
        "warnings": len(outcome.warnings) + sum(len(w) for w in verdicts.warnings.values()),
        "batch_warnings": verdicts.warnings,
    }


def _publish_folder(local: str, uri: str) -> str:
    """Copy a local folder (the rendered Data Docs site) under ``uri``; return its index page."""
    for root, _, files in os.walk(local):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                storage.write_bytes(handle.read(), layout.join(uri, os.path.relpath(path, local)))
    return layout.join(uri, "index.html")


def split_dataset(spec: PipelineSpec, dataset: DatasetRef, run_id: str) -> SplitRefs:
    """Split into train, (validation,) and test; the test split is the hold-out for the gate.

    ``cleaning.clip`` winsorizes the train split only (bounds from the dataset's profile).
    """
    from airflow_mlops.core.data.cleaning import apply_clip, clip_bounds
    from airflow_mlops.core.data.splitting import split_frame

    frame = tables.read_table(dataset["uri"])
    bounds = clip_bounds(spec, storage.read_json(dataset["profile_uri"])) if spec.cleaning.clip else {}
    folder = layout.run_dir(spec.name, run_id, "split")
    parts: dict[str, SplitPart] = {}
    for name, part in split_frame(frame, spec).items():
        if name == "train":
            part = apply_clip(part, bounds)
        part_uri = layout.join(folder, f"{name}.parquet")
        tables.write_parquet(part, part_uri)
        parts[name] = {"uri": part_uri, "rows": len(part), "fingerprint": tables.fingerprint_frame(part)}
    train, test = parts["train"], parts["test"]  # in the order split_frame gives them
    out: SplitRefs = (
        {"train": train, "validation": parts["validation"], "test": test}
        if "validation" in parts
        else {"train": train, "test": test}
    )
    if bounds:
        out["clip_bounds"] = {column: list(pair) for column, pair in bounds.items()}
    return out
