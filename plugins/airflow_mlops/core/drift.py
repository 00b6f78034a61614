"""Per-feature data drift between a reference (training) table and current data.

The decision statistic is the Population Stability Index (PSI), an effect size: it
does not grow with the number of rows the way a p-value shrinks, so a million rows
of harmless noise do not raise an alarm. Numeric columns are binned on reference
quantiles; categorical columns compare category shares; missing values are a bin of
their own in both. The KS statistic is reported for numeric columns as context.

Rule: a feature drifts when PSI > ``psi_threshold``; the batch drifts when at least
``min_drifted_features`` features drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

EPSILON = 1e-4


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    drifted: bool
    ks_statistic: float | None = None


@dataclass
class DriftReport:
    drift_detected: bool
    drifted_features: list[str]
    psi_threshold: float
    min_drifted_features: int
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift] = field(default_factory=list)

    def scores(self) -> dict[str, float]:
        return {f.feature: round(f.psi, 6) for f in self.features}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    ref = np.clip(reference_share, EPSILON, None)
    cur = np.clip(current_share, EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_bins).astype("float64")
    total = counts.sum()
    return counts / total if total else counts


def numeric_psi(reference: pd.Series, current: pd.Series, bins: int) -> float:
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype="float64")
    cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype="float64")
    finite = ref[~np.isnan(ref)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.array([])
    n_bins = len(edges) + 2  # value bins plus one bin for missing values

    def codes(values: np.ndarray) -> np.ndarray:
        out = np.searchsorted(edges, values, side="right")
        out[np.isnan(values)] = n_bins - 1
        return out

    return _psi(_shares(codes(ref), n_bins), _shares(codes(cur), n_bins))


def _categories(values: pd.Series) -> pd.Series:
    """Category labels as text, every form of missing ("" from the model's inputs, None, NaN) as one."""
    text = values.astype("object").where(values.notna(), None).map(lambda v: None if v is None else str(v))
    return text.where(text.notna() & (text != ""), "__missing__")


def categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    # The reference is raw training data, the current side logged model inputs ("" for missing,
    # every value as text): compare both as text, with one missing bin.
    ref = _categories(reference)
    cur = _categories(current)
    categories = sorted(set(ref.unique()) | set(cur.unique()), key=str)
    ref_share = ref.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    cur_share = cur.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    return _psi(ref_share, cur_share)


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    psi_threshold: float = 0.2,
    min_drifted_features: int = 1,
    bins: int = 10,
) -> DriftReport:
    """Compare every feature of ``current`` with ``reference`` and apply the decision rule."""
    missing = [c for c in [*numeric, *categorical] if c not in current.columns]
    if missing:
        raise ValueError(f"current data lacks feature columns {missing}")
    if current.empty or reference.empty:
        raise ValueError(
            f"cannot measure drift on empty data (reference {len(reference)} rows, current {len(current)} rows)"
        )
    features = []
    for column in numeric:
        psi = numeric_psi(reference[column], current[column], bins)
        ks = stats.ks_2samp(
            pd.to_numeric(reference[column], errors="coerce").dropna(),
            pd.to_numeric(current[column], errors="coerce").dropna(),
        ).statistic
        features.append(FeatureDrift(column, "numeric", psi, psi > psi_threshold, float(ks)))
    for column in categorical:
        psi = categorical_psi(reference[column], current[column])
        features.append(FeatureDrift(column, "categorical", psi, psi > psi_threshold))
    drifted = [f.feature for f in features if f.drifted]
    return DriftReport(
        drift_detected=len(drifted) >= min_drifted_features,
        drifted_features=drifted,
        psi_threshold=psi_threshold,
        min_drifted_features=min_drifted_features,
        reference_rows=len(reference),
        current_rows=len(current),
        features=features,
    )
