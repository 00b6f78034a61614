"""Batch scoring of one file: read in chunks, validate, predict, and the prediction log of each chunk."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_mlops.core.data import sources
from airflow_mlops.core.io import storage
from airflow_mlops.core.operations.prediction_log.batch import LogContext, log_table, prediction_log_frame
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)


def feedback_name(uri: str) -> str:
    """The labeled-history copy's name: Parquet whatever the input's format, one per input.

    Only the data suffix is stripped (``sales.2026-01.csv`` -> ``sales.2026-01``) and a hash
    of the input's URI follows: two inputs never map to the same copy, and scoring the same
    input again (a manual re-run) names the same copy, which is then kept, so its rows never
    enter the training history twice.
    """
    import hashlib

    from airflow_mlops.core.data.sources import SUFFIXES

    base = uri.rsplit("/", 1)[-1]
    lowered = base.lower()
    suffix = next((s for s in sorted(SUFFIXES, key=len, reverse=True) if lowered.endswith(s)), "")
    stem = base[: len(base) - len(suffix)] or "batch"
    return f"{stem}.{hashlib.sha256(uri.encode()).hexdigest()[:12]}.parquet"


@contextmanager
def as_parquet(uri: str, spec: PipelineSpec, tmp: str) -> Iterator[str]:
    """A local Parquet file holding ``uri``'s rows: the file itself, or a chunkwise conversion.

    CSV (with ``data.source.csv``'s parsing options) and JSON Lines are read in chunks as
    ingestion reads them and cast to the declared column types; the file's schema is fixed
    from the declared types (``_conversion_schema``) and every chunk is cast to it, so a
    column that is empty, or whole numbers, in the first chunk does not break a later one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.data import ingest

    if sources.format_of(uri, None) == "parquet":
        with storage.local_copy(uri) as path:
            yield path
        return
    source = spec.data.source.model_copy(update={"format": None, "chunk_rows": spec.scoring.chunk_rows})
    path = os.path.join(tmp, f"input-{uuid.uuid4().hex}.parquet")
    types = spec.declared_types
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for raw in sources.read_chunks(uri, source):
            table = pa.Table.from_pandas(ingest.cast_declared(raw, types, uri), preserve_index=False)
            if writer is None:
                schema = _conversion_schema(table.schema, types)
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(_conform(table, schema, uri))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise sources.IngestError("no data rows (only a header?)", uri)
    try:
        yield path
    finally:
        os.remove(path)


_DECLARED_ARROW = {"float": "float64", "int": "int64", "string": "string", "bool": "bool"}


def _conversion_schema(first: Any, types: dict[str, str]) -> Any:
    """The converted file's schema, fixed before any row is written: the first chunk's columns,
    typed as declared (``data.dtypes``, feature defaults). An undeclared column keeps the first
    chunk's type, except that a column with no value yet is text and whole numbers are floats
    (JSON Lines make an int column float as soon as a value is missing or fractional)."""
    import pyarrow as pa

    fields = []
    for field in first:
        kind = types.get(field.name)
        if kind == "datetime":
            target = pa.timestamp("ns", tz="UTC")
        elif kind is not None:
            target = pa.type_for_alias(_DECLARED_ARROW[kind])
        elif pa.types.is_null(field.type) or pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            target = pa.string()
        elif pa.types.is_integer(field.type):
            target = pa.float64()
        else:
            target = field.type
        fields.append(pa.field(field.name, target))
    return pa.schema(fields)


def _conform(table: Any, schema: Any, uri: str) -> Any:
    """``table`` cast to ``schema``: a column it lacks is null, a column the first chunk lacked is dropped."""
    import pyarrow as pa

    from airflow_mlops.core.data.sources import IngestError

    dropped = [name for name in table.column_names if name not in schema.names]
    if dropped:
        logger.warning("%s: column(s) %s first appear after the first chunk; not kept", uri, dropped)
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(len(table), field.type))
            continue
        try:
            columns.append(table[field.name].cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise IngestError(
                f"column '{field.name}' holds {table[field.name].type} values that do not fit its type "
                f"{field.type} (set by its declared type, or by the first chunk: declare it in data.dtypes): {exc}",
                uri,
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)


def validate_file(path: str, spec: PipelineSpec) -> bool:
    """Validate the whole file, column by column; raise if it cannot be scored.

    Returns whether its labels are valid too (it carries the label and passes the full
    suite, label included): only then does it join the labeled history.
    """
    from airflow_mlops.core.data.validation.plan import parquet_source
    from airflow_mlops.core.data.validation.suite import DataValidationError, validate_batch

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


def score_file(path: str, out_path: str, model: Any, spec: PipelineSpec, context: LogContext) -> int:
    """Score the Parquet file at ``path`` chunk by chunk into the log at ``out_path`` (a row group per chunk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys([*([spec.data.id_column] if spec.data.id_column else []), *spec.data.features.all]))
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        with open(path, "rb") as handle:
            # pre_buffer=False: pyarrow would otherwise keep every row group it read until the file closes.
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            for batch in parquet.iter_batches(batch_size=spec.scoring.chunk_rows, columns=columns):
                log = prediction_log_frame(batch.to_pandas(), model, spec, context)
                table = log_table(log, model)
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
