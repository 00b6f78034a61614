"""The watermark of an incremental SQL source: encoded in each landed batch, recovered from the lake.

A batch's watermark travels in its Parquet metadata, so the lake itself says how far the source was read;
the state file is only a hint (``last_watermark`` checks it against the batches).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

import pyarrow.parquet as pq

from airflow_mlops import layout as settings
from airflow_mlops.core.data.sql_source import (
    BATCH_SUFFIX,
    WATERMARK_KEY,
    SqlRead,
    SqlSourceError,
    _sql,
    query_digest,
    source_label,
)
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec


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
    return settings.join(settings.lake_dir(pipeline, "_sql"), "watermark.json")


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
    batches = [u for u in storage.list_files(settings.lake_dir(spec.name, "labeled"), (".parquet",))
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
