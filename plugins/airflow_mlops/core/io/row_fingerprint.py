"""A stable 64-bit fingerprint of each row's values: the hash split's key without an id, and the
deduplication key.

The fingerprint of a row depends only on its column names and its values, compared the way
ingestion types them, so what must not move a row between splits does not:

- column order (per-column hashes are combined by a sum, which ignores order);
- chunking, the file a row came from, its position, its format (CSV, Parquet, JSON Lines):
  each row is hashed on its own, after the declared types are applied;
- how a number is written: values are compared as 64-bit floats, so ``1.5``, ``1.50`` and
  ``15e-1`` (and an int ``3`` and a float ``3.0``) are one value, and ``-0.0`` is ``0.0``;
- which missing marker a file used (``NA``, empty, null): every missing value is one value.

What changes a row's fingerprint: any value of a hashed column (a corrected label, an updated
feature), a column's type (the number ``1`` and the text ``"1"`` differ), and the set or names
of the hashed columns (adding, removing or renaming a feature re-deals every row once).
Text is compared exactly (case and spaces count; ``cleaning.normalize`` runs before).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

_MISSING = np.uint64(0x9E3779B97F4A7C15)  # what every missing value hashes to, whatever its column's type
_TEXT_KEY = "airflow-mlops-01"  # 16 bytes: pandas' siphash key for text values (fixed: part of the contract)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (uint64 in, uint64 out)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64, copy=True)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _name_hash(name: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little"))


def value_hashes(values: pd.Series) -> np.ndarray:
    """One uint64 per value, after the normalisation described in the module docstring."""
    missing = values.isna().to_numpy(dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(values):
        # Naive times are read as UTC; any resolution compares in nanoseconds.
        stamps = pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        hashed = _mix(stamps.view(np.int64).view(np.uint64) ^ np.uint64(0xD1B54A32D192ED03))
    elif pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 becomes 0.0
        hashed = _mix(np.where(missing, 0.0, numbers).view(np.uint64))
    else:
        text = values.astype("string").fillna("")
        hashed = pd.util.hash_pandas_object(text, index=False, hash_key=_TEXT_KEY, categorize=True).to_numpy()
    hashed = np.array(hashed, dtype=np.uint64)  # a writable copy
    hashed[missing] = _MISSING
    return hashed


def row_fingerprints(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The fingerprint of every row of ``frame`` over ``columns`` (uint64; order of ``columns`` is irrelevant)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot fingerprint rows: column(s) {missing} are not in the data")
    total = np.zeros(len(frame), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in dict.fromkeys(columns):
            total += _mix(value_hashes(frame[name]) ^ _name_hash(name))
    return _mix(total)


def fingerprint_fraction(fingerprints: np.ndarray, salt: int) -> np.ndarray:
    """Map fingerprints to stable numbers in [0, 1), salted by ``split.seed``."""
    salted = _mix(fingerprints ^ _mix(np.array([salt & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)))
    return (salted % np.uint64(1_000_000)).astype("float64") / 1_000_000
