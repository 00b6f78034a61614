"""Tables (pandas DataFrames) read from and written to URIs, and their fingerprints."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable

import pandas as pd

from airflow_mlops.core.storage import local_copy, write_bytes


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


def read_tables(uris: Iterable[str]) -> pd.DataFrame:
    frames = [read_table(uri) for uri in uris]
    if not frames:
        raise ValueError("no input files to read")
    return pd.concat(frames, ignore_index=True)


class Fingerprinter:
    """Content fingerprint of a table fed in chunks: the same for any chunking of the same rows."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._schema: str | None = None

    def update(self, chunk: pd.DataFrame) -> None:
        schema = json.dumps([[str(c), str(t)] for c, t in chunk.dtypes.items()])
        if self._schema is None:
            self._schema = schema
            self._digest.update(schema.encode())
        elif schema != self._schema:
            raise ValueError(f"chunk schema {schema} differs from the first chunk's {self._schema}")
        self._digest.update(pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()[:16]


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """Content fingerprint of a table: column names, dtypes and every value."""
    fingerprinter = Fingerprinter()
    fingerprinter.update(frame)
    return fingerprinter.hexdigest()
