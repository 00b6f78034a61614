"""Declarative cleaning steps (``cleaning`` in the spec).

- ``normalize``: strip/lowercase/map categorical text; applied at ingestion and again by
  ``training.feature_frame`` at prediction time, so both see the same categories.
- ``deduplicate`` (on by default): drop rows whose ``subset`` of columns (default: the id,
  the features and the label) was already seen (the first is kept), across all chunks and
  files of a run, by 64-bit row fingerprints (``core.io.row_fingerprint``: column order, file
  format and number formatting do not matter). A re-landed file adds nothing.
- ``clip``: winsorize numeric training rows to fixed bounds or profile quantiles; the test
  split keeps the real values, so evaluation sees the data as it comes.
- ``impute``: per-column strategies fitted into the model's Pipeline (see ``training``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflow_mlops.core.io.row_fingerprint import row_fingerprints
from airflow_mlops.spec import PipelineSpec

if TYPE_CHECKING:
    from airflow_mlops.core.model.features import NormalizeRule


def normalize_categories(frame: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """``frame`` (a copy) with ``cleaning.normalize`` applied to the categorical columns it holds."""
    from airflow_mlops.core.model.features import InputContract

    rules = InputContract.from_spec(spec).normalize
    return normalize_columns(frame.copy(), rules) if rules else frame


def normalize_columns(frame: pd.DataFrame, rules: Sequence[tuple[str, Sequence[NormalizeRule]]]) -> pd.DataFrame:
    """Strip / lowercase / map the text of each ruled column ``frame`` holds, in place: the one
    implementation ingestion (``normalize_categories``) and the model's inputs
    (``training.feature_frame``) share; the serving app applies the same rules per value
    (``core.model.features.clean_category``)."""
    for column, column_rules in rules:
        if column not in frame.columns:
            continue
        values = frame[column].astype("string")
        for rule in column_rules:
            if rule.strip:
                values = values.str.strip()
            if rule.lowercase:
                values = values.str.lower()
            if rule.mapping:
                values = values.replace(rule.lookup)
        frame[column] = values
    return frame


class Deduplicator:
    """Drops rows already seen in this run (by the fingerprint of ``subset``), keeping the first."""

    def __init__(self, spec: PipelineSpec) -> None:
        rule = spec.cleaning.deduplicate
        self.active = rule.enabled
        self.subset = rule.subset or spec.row_columns
        self._seen = np.empty(0, dtype=np.uint64)
        self.dropped = 0

    def apply(self, chunk: pd.DataFrame) -> pd.DataFrame:
        if not self.active or chunk.empty:
            return chunk
        missing = [c for c in self.subset if c not in chunk.columns]
        if missing:
            raise ValueError(f"cleaning.deduplicate.subset names missing column(s) {missing}")
        hashes = row_fingerprints(chunk, self.subset)
        first_in_chunk = ~pd.Series(hashes).duplicated().to_numpy()
        keep = first_in_chunk & ~self._was_seen(hashes)
        # ``_seen`` stays sorted: appending the sorted new keys and a stable sort (timsort, which
        # merges the two sorted runs) costs one pass, where np.union1d re-sorted everything per chunk.
        merged = np.concatenate([self._seen, np.sort(hashes[keep])])
        merged.sort(kind="stable")
        self._seen = merged
        self.dropped += int((~keep).sum())
        return chunk[keep]

    def _was_seen(self, hashes: np.ndarray) -> np.ndarray:
        if not len(self._seen):
            return np.zeros(len(hashes), dtype=bool)
        position = np.searchsorted(self._seen, hashes)
        position[position == len(self._seen)] = 0
        return self._seen[position] == hashes


def clip_bounds(spec: PipelineSpec, profile: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """Resolve each clip rule to numbers, reading quantiles from the dataset's profile."""
    bounds = {}
    for column, rule in spec.cleaning.clip.items():
        quantiles = profile.get("columns", {}).get(column, {}).get("quantiles", {})
        low = rule.min if rule.lower_quantile is None else quantiles.get(rule.lower_quantile)
        high = rule.max if rule.upper_quantile is None else quantiles.get(rule.upper_quantile)
        bounds[column] = (low, high)
    return bounds


def apply_clip(frame: pd.DataFrame, bounds: dict[str, tuple[float | None, float | None]]) -> pd.DataFrame:
    if not bounds:
        return frame
    out = frame.copy()
    for column, (low, high) in bounds.items():
        out[column] = out[column].astype("float64").clip(lower=low, upper=high)
    return out
