"""The watermark of an incremental SQL source: encoded in each landed batch, recovered from the lake.

A batch's watermark travels in its Parquet metadata, so the lake itself says how far the source was read;
the state file is only a hint (``last_watermark`` checks it against the batches).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from airflow_mlops import layout
from airflow_mlops.core.contracts import SqlSourceRead
from airflow_mlops.core.data.sources import IngestError
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec, SqlSourceSpec

WATERMARK_KEY = b"airflow_mlops.sql_watermark"


BATCH_SUFFIX = "-sql.parquet"


class SqlSourceError(IngestError):
    """The SQL source cannot be read: a bad query, a missing connection, a type mismatch."""


def source_label(sql: SqlSourceSpec) -> str:
    """How errors and logs name the source (never the connection's URI: it may hold a password)."""
    return f"SQL source (connection '{sql.conn_id}')"


def query_digest(sql: SqlSourceSpec) -> str:
    return hashlib.sha256(sql.query.encode()).hexdigest()[:16]


@dataclass
class SqlRead:
    """One read of the source: what landed where, and the watermark range it covers."""

    uri: str | None  # the Parquet file written; None when an incremental read found no new rows
    rows: int
    chunks: int
    after: dict[str, Any] | None  # the watermark read from (exclusive); None: from the start
    watermark: dict[str, Any] | None  # the largest watermark read (or kept, when nothing new)

    def info(self, sql: SqlSourceSpec) -> SqlSourceRead:
        """For XCom and lineage: no query text, no credentials."""
        return {"source": source_label(sql), "conn_id": sql.conn_id, "query_sha": query_digest(sql),
                "landed": self.uri, "rows": self.rows, "chunks": self.chunks,
                "watermark_column": sql.watermark_column, "after": self.after, "watermark": self.watermark}  # fmt: skip


def _sql(spec: PipelineSpec) -> SqlSourceSpec:
    sql = spec.data.source.sql
    if sql is None:
        raise ValueError(f"pipeline '{spec.name}' has no data.source.sql")
    return sql


def encode_watermark(value: Any, column: str) -> dict[str, Any]:
    """A watermark value as JSON, with its kind so it binds back as the same type."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return {"type": "int", "value": value}
    elif isinstance(value, float):
        return {"type": "float", "value": value}
    elif isinstance(value, decimal.Decimal):
        return {"type": "decimal", "value": str(value)}
    elif isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    elif isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    elif isinstance(value, str):
        return {"type": "string", "value": value}
    raise SqlSourceError(
        f"watermark column '{column}' holds {type(value).__name__} values; use a number, date, timestamp or "
        "text column that grows with every new row"
    )


def decode_watermark(encoded: dict[str, Any]) -> Any:
    kind, value = encoded["type"], encoded["value"]
    decoders: dict[str, Any] = {"int": int, "float": float, "decimal": decimal.Decimal, "string": str,
                "datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat}  # fmt: skip
    return decoders[kind](value)


def state_uri(pipeline: str) -> str:
    return layout.join(layout.lake_dir(pipeline, "_sql"), "watermark.json")


def _batch_watermark(uri: str) -> dict[str, Any] | None:
    with storage.local_copy(uri) as path:
        metadata = pq.read_metadata(path).metadata or {}
    raw = metadata.get(WATERMARK_KEY)
    return json.loads(raw) if raw else None


def last_watermark(spec: PipelineSpec) -> dict[str, Any] | None:
    """The largest watermark read so far: the state file, or a newer batch the state missed."""
    sql = _sql(spec)
    uri = state_uri(spec.name)
    state = storage.read_json(uri) if storage.exists(uri) else None
    if state and state.get("watermark_column") != sql.watermark_column:
        raise SqlSourceError(
            f"{uri} was written for watermark column '{state.get('watermark_column')}', not "
            f"'{sql.watermark_column}'; delete it to read the source from the start",
            source_label(sql),
        )
    best = state["watermark"] if state else None
    batches = [u for u in storage.list_files(layout.lake_dir(spec.name, "labeled"), (".parquet",))
               if u.endswith(BATCH_SUFFIX)]  # fmt: skip
    if batches and (not state or batches[-1] != state.get("batch")):
        landed = _batch_watermark(batches[-1])  # landed, then the task died before the state was written
        if landed and (best is None or decode_watermark(landed) > decode_watermark(best)):
            best = landed
    return best


def save_watermark(spec: PipelineSpec, read: SqlRead) -> None:
    sql = _sql(spec)
    state = {"conn_id": sql.conn_id, "query_sha": query_digest(sql), "watermark_column": sql.watermark_column,
             "watermark": read.watermark, "batch": read.uri, "rows": read.rows,
             "updated_at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    storage.write_json(state, state_uri(spec.name))
