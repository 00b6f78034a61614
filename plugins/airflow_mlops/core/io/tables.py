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
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
