"""Column profiles computed one chunk at a time and merged, so any table size fits in memory.

Exact per column: count, nulls, min, max, mean, std (from sums), top values of
non-numeric columns (while distinct values stay under ``DISTINCT_CAP``). Distinct counts
use a K-minimum-values sketch of value hashes: exact below ``SKETCH_SIZE`` distinct
values, an estimate (relative error about 1/sqrt(K), ~1.6%) above. Quantiles and the histogram come from
a uniform sample of up to ``SAMPLE_SIZE`` values kept by bottom-k random keys, so merging
chunk profiles keeps the sample uniform. The profile is JSON: saved as an artifact,
logged to MLflow, and used as the reference for inferred expectations and drift.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DISTINCT_CAP = 10_000
SKETCH_SIZE = 4096
SAMPLE_SIZE = 20_000
TOP_VALUES = 20
HISTOGRAM_BINS = 20
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def column_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "categorical"


@dataclass
class ColumnAccumulator:
    """Running statistics of one column; ``add`` a chunk, ``merge`` another accumulator."""

    kind: str
    dtype: str
    count: int = 0
    nulls: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    minimum: Any = None
    maximum: Any = None
    sketch: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))  # smallest value hashes
    counts: Counter[Any] | None = field(default_factory=Counter)  # categorical only; None once over the cap
    sample_keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    sample_values: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))

    def add(self, series: pd.Series, keys: np.ndarray) -> None:
        self.count += len(series)
        present = series.notna().to_numpy()
        missing = int((~present).sum())
        self.nulls += missing
        values = series[present] if missing else series
        if values.empty:
            return
        if self.kind in ("numeric", "boolean"):
            numbers = values.to_numpy(dtype="float64")
            finite = numbers[np.isfinite(numbers)]
            self.total += float(finite.sum())
            self.total_sq += float(np.square(finite).sum())
            self._bounds(numbers.min(), numbers.max())
            self._sample(keys[present] if missing else keys, numbers)
        elif self.kind == "datetime":
            self._bounds(values.min(), values.max())
        else:
            self._count_categories(values)
            if self.counts is not None:
                return  # exact category counts already give the distinct count
        self._distinct(values)

    def _bounds(self, low: Any, high: Any) -> None:
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)

    def _sample(self, keys: np.ndarray, values: np.ndarray) -> None:
        all_keys = np.concatenate([self.sample_keys, keys])
        all_values = np.concatenate([self.sample_values, values])
        if len(all_keys) > SAMPLE_SIZE:
            keep = np.argpartition(all_keys, SAMPLE_SIZE)[:SAMPLE_SIZE]
            all_keys, all_values = all_keys[keep], all_values[keep]
        self.sample_keys, self.sample_values = all_keys, all_values

    def _count_categories(self, values: pd.Series) -> None:
        if self.counts is None:
            return
        counts = values.value_counts(sort=False)
        if len(counts) > DISTINCT_CAP:  # an id-like column: stop before building a huge dict
            self._give_up_counts()
            return
        self.counts.update(counts.to_dict())
        if len(self.counts) > DISTINCT_CAP:
            self._give_up_counts()

    def _give_up_counts(self) -> None:
        """Too many categories to count: carry the ones seen so far into the distinct sketch."""
        if self.counts:
            self._keep_smallest(pd.unique(pd.util.hash_array(np.array(list(self.counts), dtype=object))))
        self.counts = None

    def _distinct(self, values: pd.Series) -> None:
        # categorize=False: hash each value directly; factorizing first costs 6x on id-like text.
        hashes = pd.util.hash_array(values.to_numpy(), categorize=False)
        if len(self.sketch) >= SKETCH_SIZE:
            hashes = hashes[hashes < self.sketch[-1]]  # most values of a later chunk are filtered here
        self._keep_smallest(pd.unique(hashes))

    def _keep_smallest(self, hashes: np.ndarray) -> None:
        """Merge distinct ``hashes`` into the sketch, keeping the SKETCH_SIZE smallest."""
        if len(hashes) > SKETCH_SIZE:
            hashes = np.partition(hashes, SKETCH_SIZE - 1)[:SKETCH_SIZE]  # O(n); the rest cannot make the cut
        self.sketch = np.union1d(self.sketch, hashes)[:SKETCH_SIZE]

    def merge(self, other: ColumnAccumulator) -> None:
        self.count += other.count
        self.nulls += other.nulls
        self.total += other.total
        self.total_sq += other.total_sq
        if other.minimum is not None:
            self._bounds(other.minimum, other.maximum)
        if self.counts is not None and other.counts is None:
            self._give_up_counts()
        elif other.counts is not None and self.counts is None:
            self._keep_smallest(pd.unique(pd.util.hash_array(np.array(list(other.counts), dtype=object))))
        self._keep_smallest(other.sketch)
        if self.counts is not None and other.counts is not None:
            self.counts.update(other.counts)
        else:
            self.counts = None
        self._sample(other.sample_keys, other.sample_values)

    def distinct_is_exact(self) -> bool:
        if self.kind == "categorical" and self.counts is not None:
            return True
        return len(self.sketch) < SKETCH_SIZE

    def distinct_count(self) -> int:
        if self.kind == "categorical" and self.counts is not None:
            return len(self.counts)
        if len(self.sketch) < SKETCH_SIZE:
            return len(self.sketch)
        # KMV estimate: K distinct hashes fill the fraction (K-th smallest / 2^64) of the hash space.
        return round((SKETCH_SIZE - 1) / (float(self.sketch[-1]) / 2.0**64))

    def result(self) -> dict[str, Any]:
        present = self.count - self.nulls
        out: dict[str, Any] = {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "nulls": self.nulls,
            "null_fraction": self.nulls / self.count if self.count else 0.0,
            "distinct": self.distinct_count(),
            "distinct_is_exact": self.distinct_is_exact(),
        }
        if self.kind in ("numeric", "boolean") and present:
            mean = self.total / present
            variance = max(self.total_sq / present - mean * mean, 0.0) * present / max(present - 1, 1)
            quantiles = np.quantile(self.sample_values, QUANTILES) if len(self.sample_values) else []
            low, high = float(self.minimum), float(self.maximum)
            counts, edges = np.histogram(
                self.sample_values, bins=HISTOGRAM_BINS, range=(low, high if high > low else low + 1)
            )
            scale = present / max(len(self.sample_values), 1)
            out.update(
                {
                    "min": low,
                    "max": high,
                    "mean": mean,
                    "std": float(np.sqrt(variance)),
                    "quantiles": {f"p{int(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles, strict=False)},
                    "histogram": {
                        "edges": [float(e) for e in edges],
                        "counts": [round(c * scale) for c in counts],
                        "estimated_from_sample": bool(scale != 1),
                    },
                }
            )
        elif self.kind == "datetime" and present:
            out.update({"min": str(self.minimum), "max": str(self.maximum)})
        if self.kind == "categorical" and self.counts is not None:
            out["top_values"] = dict(self.counts.most_common(TOP_VALUES))
            out["categories_exact"] = True
            out["categories"] = sorted(self.counts) if len(self.counts) <= 1000 else None
        return out


class TableProfiler:
    """Profile a table chunk by chunk: ``add(chunk)`` for each, then ``result()``."""

    def __init__(self, seed: int = 0) -> None:
        self.columns: dict[str, ColumnAccumulator] = {}
        self.rows = 0
        self._rng = np.random.default_rng(seed)

    def add(self, chunk: pd.DataFrame) -> None:
        keys = self._rng.integers(0, np.iinfo(np.uint64).max, size=len(chunk), dtype=np.uint64)
        for name in chunk.columns:
            series = chunk[name]
            accumulator = self.columns.get(name)
            if accumulator is None:
                accumulator = self.columns[name] = ColumnAccumulator(kind=column_kind(series), dtype=str(series.dtype))
            accumulator.add(series, keys)
        self.rows += len(chunk)

    def merge(self, other: TableProfiler) -> None:
        for name, accumulator in other.columns.items():
            if name in self.columns:
                self.columns[name].merge(accumulator)
            else:
                self.columns[name] = accumulator
        self.rows += other.rows

    def result(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": {name: acc.result() for name, acc in self.columns.items()}}


def profile_frame(frame: pd.DataFrame, chunk_rows: int = 1_000_000) -> dict[str, Any]:
    profiler = TableProfiler()
    for start in range(0, max(len(frame), 1), chunk_rows):
        profiler.add(frame.iloc[start : start + chunk_rows])
    return profiler.result()
