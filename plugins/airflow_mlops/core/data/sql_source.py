"""A SQL query as the training source: streamed in chunks, landed as Parquet, optionally incremental.

The database comes in as a SQLAlchemy engine, made by the operator from an Airflow
connection (``hooks.sql``): the core never sees Airflow or credentials. Rows are streamed
with a server-side cursor (``yield_per``), so memory stays at one chunk of
``data.source.chunk_rows`` rows whatever the result's size. Each chunk is cast to the
declared types (errors name the SQL source and the column) and written to one Parquet file:

- a full read lands in the run's folder (``<run>/ingest/sql_snapshot.parquet``) and is
  ingested like a file, so the same rows in the same order give the same dataset fingerprint;
- with ``watermark_column`` only rows above the largest value read before are read, in
  watermark order, and land as a batch of the pipeline's lake, where the window logic
  (``data.window_batches``), quarantine and validation treat them like landed files.

The largest watermark is kept in ``<lake>/_sql/watermark.json``, written right after the
batch holding those rows landed (atomically), and in the batch's own Parquet metadata: a task
killed between the two writes is repaired by the retry from the newest batch, so no row is
read twice or skipped. A batch later quarantined keeps its rows out, as a bad file would."""

from __future__ import annotations

import decimal
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops import layout
from airflow_mlops.core.contracts import SqlSourceRead
from airflow_mlops.core.data.ingest import _check_columns, cast_declared
from airflow_mlops.core.data.sources import IngestError
from airflow_mlops.core.data.sql_watermark import (
    BATCH_SUFFIX,
    WATERMARK_KEY,
    SqlRead,
    SqlSourceError,
    _sql,
    decode_watermark,
    encode_watermark,
    last_watermark,
    save_watermark,
    source_label,
    state_uri,
)
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec, SqlSourceSpec

logger = logging.getLogger(__name__)


# SQLAlchemy's own pattern of ``:name`` bind parameters in text(): the user's colons are escaped.
_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)


_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def statement(engine: Any, sql: SqlSourceSpec, after: Any = None) -> tuple[Any, dict[str, Any]]:
    """The query to run: the spec's own, or wrapped to read past the watermark in watermark order."""
    from sqlalchemy import text

    query = _BIND.sub(lambda match: "\\:" + match.group(1), sql.query)  # its colons are not parameters
    if not sql.watermark_column:
        return text(query), {}
    column = engine.dialect.identifier_preparer.quote(sql.watermark_column)
    where = f"{column} > :amlops_after" if after is not None else f"{column} IS NOT NULL"
    # Newlines around the query: a trailing -- comment in it must not swallow the wrapper.
    wrapped = f"SELECT * FROM (\n{query}\n) AS amlops_source WHERE {where} ORDER BY {column}"
    return text(wrapped), ({"amlops_after": after} if after is not None else {})


def _redact(message: str, engine: Any) -> str:
    password = getattr(getattr(engine, "url", None), "password", None)
    if password:
        message = message.replace(str(password), "***")
    return re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1:***@", message)


def _database_error(exc: Exception, engine: Any, sql: SqlSourceSpec) -> SqlSourceError:
    """The database's own words (first lines, no URI, no password), naming the source."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip().strip("^")]  # no caret lines
    text = _redact(" | ".join(lines[:4])[:600] or type(original).__name__, engine)
    hint = ""
    if sql.watermark_column and sql.watermark_column in text:
        hint = f" (data.source.sql.watermark_column '{sql.watermark_column}' must be a column of the query's result)"
    return SqlSourceError(f"the query failed: {text}{hint}", source_label(sql))


def stream_rows(engine: Any, sql: SqlSourceSpec, chunk_rows: int, after: Any = None) -> Iterator[pd.DataFrame]:
    """The query's rows as DataFrames of at most ``chunk_rows`` rows, from a server-side cursor.

    (``stream_results``: the ``yield_per`` option alone left psycopg 3 fetching every row at once.)

    On PostgreSQL the transaction is read-only, so a data-modifying CTE fails instead of writing.
    """
    from sqlalchemy.exc import SQLAlchemyError

    query, params = statement(engine, sql, after)
    options: dict[str, Any] = {"stream_results": True, "max_row_buffer": chunk_rows}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    try:
        with engine.connect() as connection:
            result = connection.execution_options(**options).execute(query, params)
            columns = result.keys()  # (iterating the result itself would fetch rows)
            names = [str(name) for name in columns]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise SqlSourceError(f"the query returns column(s) {repeated} more than once; alias them",
                                     source_label(sql))  # fmt: skip
            for rows in result.partitions(chunk_rows):
                yield to_frame(names, rows)
    except SQLAlchemyError as exc:
        raise _database_error(exc, engine, sql) from None


def _arrow_column(values: list[Any]) -> pa.Array:
    kinds = {type(value) for value in values} - {type(None)}
    if decimal.Decimal in kinds:  # NUMERIC: float, as pandas.read_sql does (decimals would vary per chunk)
        values = [None if v is None else float(v) for v in values]
    elif kinds & {dict, list}:  # JSON and arrays: their text (a struct type inferred per chunk would vary)
        values = [None if v is None else json.dumps(v, default=str) for v in values]
    elif uuid.UUID in kinds:  # text, not pyarrow's 16-byte uuid extension type
        values = [None if v is None else str(v) for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())  # UUID, ranges, ...


def to_frame(names: list[str], rows: Any) -> pd.DataFrame:
    """DB-API rows as a DataFrame: integers stay exact with NULLs (Int64), booleans nullable."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    table = pa.Table.from_arrays([_arrow_column(list(values)) for values in columns], names=names)
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)


def _check_kinds(frame: pd.DataFrame, types: dict[str, str], label: str) -> None:
    """Mismatches cast_declared would let through: timestamps or booleans read as numbers."""
    for column, kind in types.items():
        if column not in frame.columns or kind not in ("float", "int", "bool"):
            continue
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
            raise SqlSourceError(f"column '{column}' is declared {kind} but the database returns "
                                 f"{values.dtype} values; fix data.dtypes or cast it in the query", label)  # fmt: skip
        if kind != "bool" and pd.api.types.is_bool_dtype(values):
            raise SqlSourceError(f"column '{column}' is declared {kind} but the database returns booleans; "
                                 "declare it bool in data.dtypes or cast it in the query", label)  # fmt: skip


class _ParquetParts:
    """Chunks into one Parquet file; a column NULL in every row so far may get its type later."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.paths: list[str] = []
        self.schemas: list[pa.Schema] = []
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        schema = self.schemas[-1] if self.schemas else None
        if schema is not None and table.schema != schema:
            if all(a.type == b.type or pa.types.is_null(a.type) for a, b in zip(table.schema, schema, strict=True)):
                table = table.cast(schema)  # a NULL-only column of this chunk takes the file's type
            else:
                self._close()  # a column gets its first type: a new part, unified in finish()
                schema = None
        if schema is None:
            self.paths.append(os.path.join(self.folder, f"part-{len(self.paths)}.parquet"))
            self.schemas.append(table.schema)
            self.writer = pq.ParquetWriter(self.paths[-1], table.schema)
        assert self.writer is not None
        self.writer.write_table(table)

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self, metadata: dict[bytes, bytes], label: str) -> str:
        if len(self.paths) == 1 and self.writer is not None:  # the usual case: one part, no second pass
            self.writer.add_key_value_metadata(metadata)
            self._close()
            return self.paths[0]
        self._close()
        try:
            schema = pa.unify_schemas(self.schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SqlSourceError(f"a column changes type between chunks: {exc}", label) from None
        final = os.path.join(self.folder, "rows.parquet")
        with pq.ParquetWriter(final, schema) as writer:
            for path in self.paths:
                for batch in pq.ParquetFile(path).iter_batches():
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                os.remove(path)
            writer.add_key_value_metadata(metadata)
        return final


def read_to_parquet(spec: PipelineSpec, engine: Any, target_uri: str, after: dict[str, Any] | None) -> SqlRead:
    """Stream the source's rows (past ``after`` when incremental), typed, into ``target_uri``.

    Nothing is written when the read fails or (incremental) finds no rows. The file holds
    the largest watermark read in its metadata (``airflow_mlops.sql_watermark``).
    """
    sql = _sql(spec)
    label = source_label(sql)
    if not sql.watermark_column and not re.search(r"\border\s+by\b", sql.query, re.IGNORECASE):
        logger.warning("%s: the query has no ORDER BY; the same rows in another order get another fingerprint "
                       "(and retrain)", label)  # fmt: skip
    types = spec.declared_types
    rows = chunks = 0
    top: Any = decode_watermark(after) if after else None
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-sql-") as tmp:
        parts = _ParquetParts(tmp)
        for frame in stream_rows(engine, sql, spec.data.source.chunk_rows, top):
            try:
                if chunks == 0:
                    _check_columns(frame, spec, label)
                _check_kinds(frame, types, label)
                typed = cast_declared(frame, types, label)
            except SqlSourceError:
                raise
            except IngestError as exc:
                raise SqlSourceError(str(exc).removeprefix(f"{label}: "), label) from None
            if sql.watermark_column:
                values = frame[sql.watermark_column].dropna()
                if len(values):
                    value = values.max()
                    top = value.to_pydatetime() if isinstance(value, pd.Timestamp) else _plain(value)
            try:
                parts.write(pa.Table.from_pandas(typed, preserve_index=False))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise SqlSourceError(f"a column mixes incompatible types: {exc}", label) from None
            rows += len(frame)
            chunks += 1
        watermark = None
        if sql.watermark_column and top is not None:
            watermark = encode_watermark(top, sql.watermark_column)
        if rows == 0:
            if sql.watermark_column:
                return SqlRead(None, 0, 0, after, after)
            raise SqlSourceError("the query returned no rows", label)
        local = parts.finish({WATERMARK_KEY: json.dumps(watermark).encode()} if watermark else {}, label)
        storage.move_file(local, target_uri)
    return SqlRead(target_uri, rows, chunks, after, watermark)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value the database would bind."""
    return value.item() if hasattr(value, "item") else value


def read_increment(spec: PipelineSpec, engine: Any) -> SqlRead:
    """Read the rows past the last watermark into a new lake batch, then move the watermark."""
    from airflow_mlops.core.landing.inbox import claimed_name

    after = last_watermark(spec)
    target = layout.join(layout.lake_dir(spec.name, "labeled"), claimed_name(BATCH_SUFFIX.lstrip("-")))
    read = read_to_parquet(spec, engine, target, after)
    if read.uri is not None:
        save_watermark(spec, read)  # after the batch landed: a retry before this finds the batch
    elif after is not None:
        _record_recovered(spec, after)
    return read


def _record_recovered(spec: PipelineSpec, watermark: dict[str, Any]) -> None:
    """Nothing new, but the state file may lag behind the newest batch (a task died between landing
    it and recording it): record the watermark that batch carries, so the state is whole again."""
    uri = state_uri(spec.name)
    state = storage.read_json(uri) if storage.exists(uri) else None
    batches = [u for u in storage.list_files(layout.lake_dir(spec.name, "labeled"), (".parquet",))
               if u.endswith(BATCH_SUFFIX)]  # fmt: skip
    if batches and (state is None or state.get("batch") != batches[-1]):
        save_watermark(spec, SqlRead(batches[-1], 0, 0, watermark, watermark))


def read_sql_source(
    spec: PipelineSpec, engine: Any, snapshot_uri: str, claimed: list[str] | tuple[str, ...] = ()
) -> tuple[list[str], SqlSourceRead]:
    """The files a run ingests from its SQL source, and what was read (for XCom and lineage).

    A full read lands at ``snapshot_uri`` (run-scoped: a retry reads again and replaces it);
    an incremental read lands a lake batch, and the run ingests the newest
    ``data.window_batches`` batches of the lake, the new one included, plus the files of the
    run's landing claims (``claimed``), in landing order (``core.data.lake_window``).
    """
    from airflow_mlops.core.data.lake_window import select
    from airflow_mlops.core.errors import NothingToProcessError

    sql = _sql(spec)
    if engine is None:
        raise SqlSourceError("no database engine was given (the ingest operator opens it from the Airflow "
                             "connection)", source_label(sql))  # fmt: skip
    if not sql.watermark_column:
        read = read_to_parquet(spec, engine, snapshot_uri, None)
        return [snapshot_uri], read.info(sql)
    read = read_increment(spec, engine)
    lake = layout.lake_dir(spec.name, "labeled")
    landed = [read.uri] if read.uri is not None else []  # the batch this run landed is read whatever its time
    batches = select(lake, (".parquet",), spec.data.window_batches, [*claimed, *landed]).uris
    if not batches:
        raise NothingToProcessError(
            f"{source_label(sql)}: no rows with a {sql.watermark_column} above {read.after} and no batches "
            f"in {lake} yet"
        )
    return batches, read.info(sql)
