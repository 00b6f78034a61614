"""How far two models' scores are apart: PSI, mean shift, correlation, agreement (numpy only).

Shared by the offline replay (``core.model.replay``: a candidate against the champion on the rows
the champion answered) and the serving app's canary (``serving.canary``: a new champion against
the one it replaced, live). numpy only, so the serving hot path may import it.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4  # the share an empty bin is counted as (the drift statistics' convention)
BINS = 10


def score_psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float | None:
    """PSI of ``current`` against ``reference`` over the reference's quantile bins; None when either is empty.

    Non-finite values are left out. A constant reference has one edge: values on either side of it
    still fall in different bins, so a constant model against a varied one scores high.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        return np.clip(counts / counts.sum(), EPSILON, None)

    r, c = shares(ref), shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of paired values (non-finite pairs left out); None when undefined (constant side)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    """The share of paired labels that are equal (compared as text: 1 and "1" agree); None without rows."""
    x, y = np.asarray(a).astype(str), np.asarray(b).astype(str)
    return float(np.mean(x == y)) if x.size else None


def mean_shift(reference: np.ndarray, current: np.ndarray) -> float | None:
    """Mean of ``current`` minus mean of ``reference`` (finite values); None when either is empty."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return None
    return float(cur.mean() - ref.mean())
