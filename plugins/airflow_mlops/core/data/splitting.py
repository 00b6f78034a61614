"""Deterministic train / validation / test splits (see ``SplitSpec`` for the methods)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airflow_mlops.core.io.row_fingerprint import fingerprint_fraction, row_fingerprints
from airflow_mlops.spec import PipelineSpec, SplitName

SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")


def key_fraction(keys: pd.Series, salt: int) -> np.ndarray:
    """Map each key to a stable number in [0, 1): the same key always gets the same number."""
    hashed = pd.util.hash_pandas_object(keys.astype("string"), index=False, hash_key=f"{salt:016d}"[-16:])
    return (hashed.to_numpy() % np.uint64(1_000_000)).astype("float64") / 1_000_000


def _assign_by_fraction(fraction: np.ndarray, ratios: dict[SplitName, float]) -> np.ndarray:
    """Bucket numbers in [0, 1) by cumulative ratios: train first, then validation, then test."""
    labels = np.empty(len(fraction), dtype=object)
    low = 0.0
    for name in SPLITS:
        high = low + ratios.get(name, 0.0)
        labels[(fraction >= low) & (fraction < high)] = name
        low = high
    labels[fraction >= low] = "test"  # rounding at the top edge
    return labels


def assign_splits(frame: pd.DataFrame, spec: PipelineSpec) -> np.ndarray:
    """The split name of every row of ``frame``."""
    rule = spec.split
    if rule.method == "hash":
        key = rule.key or spec.data.id_column
        if key is None:
            # No id: identical rows share a fingerprint, so they can never straddle train and test.
            columns = [*spec.data.features.all, spec.data.label]
            return _assign_by_fraction(fingerprint_fraction(row_fingerprints(frame, columns), rule.seed), rule.ratios)
        if key not in frame.columns:
            raise ValueError(f"split.key column '{key}' is not in the data")
        return _assign_by_fraction(key_fraction(frame[key], rule.seed), rule.ratios)
    if rule.method == "time":
        column = str(rule.time_column)
        if column not in frame.columns:
            raise ValueError(f"split.time_column '{column}' is not in the data")
        values = frame[column]
        if not (pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_numeric_dtype(values)):
            raise ValueError(
                f"split.time_column '{column}' is {values.dtype}, not a date or number: declare it in data.dtypes "
                "as datetime (text dates would sort alphabetically)"
            )
        if frame[column].isna().any():
            raise ValueError(f"split.time_column '{column}' has {int(frame[column].isna().sum())} missing values")
        order = np.argsort(frame[column].to_numpy(), kind="stable")
        rank = np.empty(len(frame), dtype="float64")
        rank[order] = np.arange(len(frame)) / len(frame)
        return _assign_by_fraction(rank, rule.ratios)
    rng = np.random.default_rng(rule.seed)
    if rule.method == "random":
        rank = np.empty(len(frame), dtype="float64")
        rank[rng.permutation(len(frame))] = np.arange(len(frame)) / len(frame)
        return _assign_by_fraction(rank, rule.ratios)
    # stratified: rank rows within each label class, so every split keeps the class shares
    labels = np.empty(len(frame), dtype=object)
    for _, index in frame.groupby(spec.data.label, sort=True).indices.items():
        rank = np.empty(len(index), dtype="float64")
        rank[rng.permutation(len(index))] = np.arange(len(index)) / len(index)
        labels[index] = _assign_by_fraction(rank, rule.ratios)
    return labels


def split_frame(frame: pd.DataFrame, spec: PipelineSpec) -> dict[SplitName, pd.DataFrame]:
    """Split ``frame``; train and test must both be non-empty."""
    if len(frame) < 4:
        raise ValueError(f"need at least 4 labeled rows to split, got {len(frame)}")
    assigned = assign_splits(frame, spec)
    parts = {
        name: frame[assigned == name].reset_index(drop=True) for name in SPLITS if spec.split.ratios.get(name, 0) > 0
    }
    empty = [name for name in ("train", "test") if parts[name].empty]
    if empty:
        raise ValueError(
            f"split left {empty} empty ({len(frame)} rows, ratios {spec.split.ratios}); more rows or other ratios"
        )
    return parts
