"""Tables (pandas DataFrames) read from and written to URIs, and their fingerprints."""

from __future__ import annotations

import hashlib
import io
import json

import pandas as pd

from airflow_mlops.core.io.storage import local_copy, write_bytes


def write_parquet(frame: pd.DataFrame, uri: str) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return write_bytes(buffer.getvalue(), uri)


def read_table(uri: str) -> pd.DataFrame:
    """Read one Parquet or CSV file (local or s3://) into a DataFrame."""
    with local_copy(uri) as path:
        if path.endswith(".csv"):
            return pd.read_csv(path)
        return pd.read_parquet(path)


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """Content fingerprint of a table: column names, dtypes and every value."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(_hashable(frame), index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with nested values (a prediction log's class probabilities: lists or maps per row)
    as JSON text, which pandas can hash; flat columns are left as they are."""
    nested = []
    for column in frame.columns:
        if not pd.api.types.is_object_dtype(frame[column]):
            continue
        values = frame[column].dropna()
        first = values.iloc[0] if len(values) else None
        if isinstance(first, (list, tuple, dict)) or (hasattr(first, "tolist") and not isinstance(first, str)):
            nested.append(column)
    if not nested:
        return frame
    as_text = {
        c: frame[c].map(lambda v: None if v is None else json.dumps(_plain(v), sort_keys=True, default=str))
        for c in nested
    }
    return frame.assign(**as_text)


def _plain(value: object) -> object:
    """A nested value as JSON-able Python (numpy arrays and pairs as lists)."""
    if hasattr(value, "tolist"):
        value = value.tolist()  # type: ignore[union-attr]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
