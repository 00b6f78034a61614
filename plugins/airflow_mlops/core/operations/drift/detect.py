"""Per-feature data drift between a reference (training) table and current data.

Each feature gets a test and effect sizes:

- numeric: the two-sample Kolmogorov-Smirnov test (statistic D, the largest gap between
  the two CDFs, and its p-value) and the Population Stability Index (PSI) over reference
  quantile bins plus a bin for missing values;
- categorical: the chi-square test of the 2 x k table of category counts (missing is a
  category), Cramér's V = sqrt(chi2 / n) as its effect size, and PSI over category shares.

Decision rule. With a million rows a p-value flags differences nobody cares about (a
shift of 3% of a standard deviation gives p = 6e-9 in the unit tests), and on a few dozen
rows an effect size is noise. So a feature drifts only when both hold:

1. the test is significant after a Bonferroni correction: p < ``alpha`` / number of features;
2. the shift is large enough to matter: PSI > ``psi_threshold`` or the test's effect size
   (KS D, or Cramér's V) > ``effect_threshold``.

The batch drifts when at least ``min_drifted_features`` features drift. KS runs on a seeded
sample of at most ``KS_SAMPLE`` rows per side (D is estimated within about 0.005); PSI and
chi-square use every row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

EPSILON = 1e-4
KS_SAMPLE = 100_000


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    drifted: bool
    ks_statistic: float | None = None
    test: str = ""
    p_value: float | None = None
    effect: float | None = None  # KS D (numeric) or Cramér's V (categorical)
    reason: str = ""


@dataclass
class DriftReport:
    drift_detected: bool
    drifted_features: list[str]
    psi_threshold: float
    min_drifted_features: int
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift] = field(default_factory=list)
    alpha: float = 0.01
    effect_threshold: float = 0.1

    def scores(self) -> dict[str, float]:
        return {f.feature: round(f.psi, 6) for f in self.features}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    ref = np.clip(reference_share, EPSILON, None)
    cur = np.clip(current_share, EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    return _shares_of(np.bincount(codes, minlength=n_bins).astype("float64"))


EDGE_SAMPLE = 200_000  # reference values the quantile bin edges are computed from


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")


def _numeric_psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    finite = ref[~np.isnan(ref)]
    if len(finite) > EDGE_SAMPLE:  # quantile edges from a seeded sample: the shares still use every row
        finite = finite[np.random.default_rng(0).integers(0, len(finite), EDGE_SAMPLE)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.array([])
    n_bins = len(edges) + 2  # value bins plus one bin for missing values

    def codes(values: np.ndarray) -> np.ndarray:
        out = np.searchsorted(edges, values, side="right")
        out[np.isnan(values)] = n_bins - 1
        return out

    return _psi(_shares(codes(ref), n_bins), _shares(codes(cur), n_bins))


def numeric_psi(reference: pd.Series, current: pd.Series, bins: int) -> float:
    return _numeric_psi(_floats(reference), _floats(current), bins)


def _categories(values: pd.Series) -> pd.Series:
    """Category labels as text, every form of missing ("" from the model's inputs, None, NaN) as one."""
    present = values.notna().to_numpy()
    text = values.astype(str)  # vectorised; missing entries are replaced below
    return text.where(present & (text != "").to_numpy(), "__missing__")


def _category_counts(reference: pd.Series, current: pd.Series) -> np.ndarray:
    """A 2 x k table of category counts (reference row, current row); missing is a category."""
    # The reference is raw training data, the current side logged model inputs ("" for missing,
    # every value as text): both are compared as text, with one missing bin.
    ref = _categories(reference).value_counts()
    cur = _categories(current).value_counts()
    return pd.concat([ref, cur], axis=1).fillna(0.0).to_numpy(dtype="float64").T


def _shares_of(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


def categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    table = _category_counts(reference, current)
    return _psi(_shares_of(table[0]), _shares_of(table[1]))


def _sample(values: np.ndarray, seed: int) -> np.ndarray:
    """At most KS_SAMPLE values, drawn with replacement (cheap; D is estimated the same way)."""
    if len(values) <= KS_SAMPLE:
        return values
    return values[np.random.default_rng(seed).integers(0, len(values), KS_SAMPLE)]


def _ks(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if not len(ref) or not len(cur):
        return 0.0, 1.0
    result = stats.ks_2samp(_sample(ref, 1), _sample(cur, 2), method="asymp")
    return float(result.statistic), float(result.pvalue)


def ks_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """(D, p-value) of the two-sample KS test on the non-missing values (sampled above KS_SAMPLE).

    The p-value is that of the samples: valid, with less power than all rows would give.
    It never changes a decision in practice: a shift large enough to matter (D > 0.1) has
    p far below any alpha at 100,000 rows per side.
    """
    return _ks(_floats(reference), _floats(current))


def _chi2(table: np.ndarray) -> tuple[float, float, float]:
    if table.shape[1] < 2:
        return 0.0, 1.0, 0.0  # one category on both sides: nothing can differ
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return float(chi2), float(p_value), float(np.sqrt(chi2 / table.sum()))


def chi2_test(reference: pd.Series, current: pd.Series) -> tuple[float, float, float]:
    """(chi2, p-value, Cramér's V) of the 2 x k table of category counts (missing is a category)."""
    return _chi2(_category_counts(reference, current))


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    psi_threshold: float = 0.2,
    min_drifted_features: int = 1,
    bins: int = 10,
    alpha: float = 0.01,
    effect_threshold: float = 0.1,
) -> DriftReport:
    """Compare every feature of ``current`` with ``reference`` and apply the decision rule."""
    missing = [c for c in [*numeric, *categorical] if c not in current.columns]
    if missing:
        raise ValueError(f"current data lacks feature columns {missing}")
    if current.empty or reference.empty:
        raise ValueError(
            f"cannot measure drift on empty data (reference {len(reference)} rows, current {len(current)} rows)"
        )
    corrected = alpha / max(len(numeric) + len(categorical), 1)
    features = []
    for column in numeric:
        ref, cur = _floats(reference[column]), _floats(current[column])
        psi = _numeric_psi(ref, cur, bins)
        d, p_value = _ks(ref, cur)
        features.append(_judge(column, "numeric", "ks", psi, d, p_value, corrected, psi_threshold, effect_threshold))
    for column in categorical:
        table = _category_counts(reference[column], current[column])
        psi = _psi(_shares_of(table[0]), _shares_of(table[1]))
        _, p_value, v = _chi2(table)
        features.append(_judge(column, "categorical", "chi2", psi, v, p_value, corrected, psi_threshold,
                               effect_threshold))  # fmt: skip
    drifted = [f.feature for f in features if f.drifted]
    return DriftReport(
        drift_detected=len(drifted) >= min_drifted_features,
        drifted_features=drifted,
        psi_threshold=psi_threshold,
        min_drifted_features=min_drifted_features,
        reference_rows=len(reference),
        current_rows=len(current),
        features=features,
        alpha=alpha,
        effect_threshold=effect_threshold,
    )


def _judge(
    column: str,
    kind: str,
    test: str,
    psi: float,
    effect: float,
    p_value: float,
    corrected_alpha: float,
    psi_threshold: float,
    effect_threshold: float,
) -> FeatureDrift:
    significant = p_value < corrected_alpha
    large = psi > psi_threshold or effect > effect_threshold
    effect_name = "KS D" if test == "ks" else "Cramér's V"
    if significant and large:
        reason = f"p={p_value:.2g} < {corrected_alpha:.2g} and PSI={psi:.3f} / {effect_name}={effect:.3f} large"
    elif significant:
        reason = f"significant (p={p_value:.2g}) but small (PSI={psi:.3f}, {effect_name}={effect:.3f})"
    elif large:
        reason = f"large (PSI={psi:.3f}, {effect_name}={effect:.3f}) but not significant (p={p_value:.2g})"
    else:
        reason = "stable"
    return FeatureDrift(
        feature=column,
        kind=kind,
        psi=psi,
        drifted=significant and large,
        ks_statistic=effect if test == "ks" else None,
        test=test,
        p_value=p_value,
        effect=effect,
        reason=reason,
    )


def prediction_drift(
    reference_scores: np.ndarray,
    current_scores: np.ndarray,
    bins: int = 10,
    alpha: float = 0.01,
    psi_threshold: float = 0.2,
    effect_threshold: float = 0.1,
) -> FeatureDrift:
    """Drift of the model's output: its scores on the reference data vs the logged ones.

    Same test and rule as a numeric feature, at ``alpha`` (one test, no correction).
    Reported beside the features; it does not count toward ``min_drifted_features``,
    because a changed output is a consequence of input drift (or of a changed world) and
    the features say which.
    """
    ref = np.asarray(reference_scores, dtype="float64")
    cur = np.asarray(current_scores, dtype="float64")
    psi = _numeric_psi(ref, cur, bins)
    d, p_value = _ks(ref, cur)
    return _judge("prediction", "prediction", "ks", psi, d, p_value, alpha, psi_threshold, effect_threshold)


def predicted_label_drift(
    reference_labels: np.ndarray,
    current_labels: np.ndarray,
    alpha: float = 0.01,
    psi_threshold: float = 0.2,
    effect_threshold: float = 0.1,
) -> FeatureDrift:
    """Drift of a classifier of more than two classes: the distribution of its predicted labels
    on the reference data vs the labels it logged (chi-square, PSI, Cramér's V over every
    class), judged like a categorical feature at ``alpha``."""
    reference, current = pd.Series(reference_labels).astype(str), pd.Series(current_labels).astype(str)
    table = _category_counts(reference, current)
    psi = _psi(_shares_of(table[0]), _shares_of(table[1]))
    _, p_value, cramers_v = _chi2(table)
    return _judge("prediction", "prediction", "chi2", psi, cramers_v, p_value, alpha, psi_threshold, effect_threshold)
