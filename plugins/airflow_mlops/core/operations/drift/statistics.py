"""The drift statistics: one row per statistic, which ``detect`` applies and ``report`` shows.

A row says which column kinds the statistic applies to and how it is computed on each,
whether it is a significance test, which ``monitoring`` threshold its value is compared
with, and how the report names and prints it. ``detect`` computes every row of a column's
kind and judges with ``judge``; ``report`` builds its table and its rule sentence from the
rows; the thresholds ``detect`` takes are the rows' ``threshold`` fields of ``MonitoringSpec``
(``thresholds``), their defaults the spec's. So a new statistic is a row here (plus its
test and its line in docs/concepts.md; a new threshold also a field of ``MonitoringSpec``).

The decision rule, over the rows of a column's kind. With a million rows a p-value flags
differences nobody cares about, and on a few dozen rows an effect size is noise, so a
feature drifts only when both hold:

1. significant: the kind's one test (KS for numbers, chi-square for categories) has
   p < ``alpha`` / number of features (Bonferroni);
2. large: some row's value exceeds its threshold: PSI > ``psi_threshold``, the normed
   Wasserstein distance (numbers) > ``wasserstein_threshold``, the Jensen-Shannon distance
   (categories) > ``jensen_shannon_threshold``, or the test's effect size (KS D, Cramér's V)
   > ``effect_threshold``. A feature may have thresholds of its own (``monitoring.features``).

The normed Wasserstein distance and the Jensen-Shannon distance are Evidently's default
effect sizes (threshold 0.1 each): comparable across columns whatever their unit, and the
reason a mean shift of 0.1 to 0.25 standard deviations is caught (KS D > 0.1 needs about
0.25, PSI > 0.2 about 0.45; benchmarks/drift_sensitivity.py measures it).

Each kind's inputs are prepared once and shared by its rows: numbers as float arrays
(``Numbers``, whose seeded sorted samples and CDF gaps KS and Wasserstein both read),
categories as the 2 x k table of counts (``Counts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import special, stats

from airflow_mlops.spec import MonitoringSpec

NUMERIC, CATEGORICAL = "numeric", "categorical"
KINDS = (NUMERIC, CATEGORICAL)
SCORE = "psi"  # the statistic that is each feature's score (``DriftReport.scores``, ``psi_*`` metrics)
EPSILON = 1e-4  # share floor of PSI: an empty bin on one side would make it infinite
KS_SAMPLE = 100_000  # KS runs on at most this many values per side (D is estimated within about 0.005)
EDGE_SAMPLE = 200_000  # reference values the quantile bin edges are computed from
STD_FLOOR = 0.001  # the normed Wasserstein distance of a constant reference divides by this (as Evidently's)


class Measure(NamedTuple):
    """A statistic's value on one column (a test's: its effect size) and, for a test, its p-value."""

    value: float
    p_value: float | None = None


@dataclass(frozen=True)
class Numbers:
    """A numeric column's two sides as float64 arrays (NaN for missing) and the PSI bin count."""

    reference: np.ndarray
    current: np.ndarray
    bins: int

    @cached_property
    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Each side's non-missing values, at most KS_SAMPLE of them (seeded), sorted."""
        ref, cur = self.reference[~np.isnan(self.reference)], self.current[~np.isnan(self.current)]
        return np.sort(_sample(ref, 1)), np.sort(_sample(cur, 2))

    @cached_property
    def cdf_gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """(points, gaps): every sampled value in order and F_reference - F_current right of it.

        KS D is the largest absolute gap, the Wasserstein-1 distance the area between the two
        CDFs (gaps times the widths between points): one sort and two searches serve both.
        """
        ref, cur = self.samples
        points = np.sort(np.concatenate([ref, cur]), kind="stable")  # two sorted runs: a merge
        gaps = np.searchsorted(ref, points, side="right") / len(ref) - np.searchsorted(cur, points, side="right") / len(
            cur
        )
        return points, gaps


@dataclass(frozen=True)
class Counts:
    """A categorical column's 2 x k table of category counts (reference row, current row)."""

    table: np.ndarray


@dataclass(frozen=True)
class Statistic:
    """One drift statistic: where it applies, how it is computed and judged, how it is shown."""

    name: str  # key in ``FeatureDrift.shifts``; a test's name is ``FeatureDrift.test``
    label: str  # how reasons and the report name its value
    compute: Mapping[str, Callable[[Any], Measure]]  # column kind -> function of that kind's inputs
    threshold: str  # the ``MonitoringSpec`` field its value must exceed to count as large
    test: bool = False  # a significance test (with a p-value); each kind has exactly one
    symbol: str = ""  # a test's effect size in the report's "effect" column header
    digits: int = 4  # decimals in the report's table

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.compute)


# -- the computations ----------------------------------------------------------------------


def floats(values: pd.Series) -> np.ndarray:
    """Numbers as float64, anything that is not a number as NaN."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")


def categories(values: pd.Series) -> pd.Series:
    """Category labels as text, every form of missing ("" from the model's inputs, None, NaN) as one."""
    present = values.notna().to_numpy()
    text = values.astype(str)  # vectorised; missing entries are replaced below
    return text.where(present & (text != "").to_numpy(), "__missing__")


def category_counts(reference: pd.Series, current: pd.Series) -> Counts:
    """The 2 x k table of category counts; missing is a category.

    The reference is raw training data, the current side logged model inputs ("" for missing,
    every value as text): both are compared as text, with one missing bin.
    """
    ref, cur = categories(reference).value_counts(), categories(current).value_counts()
    return Counts(pd.concat([ref, cur], axis=1).fillna(0.0).to_numpy(dtype="float64").T)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


def psi_of_shares(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    ref = np.clip(reference_share, EPSILON, None)
    cur = np.clip(current_share, EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_psi(sides: Numbers) -> Measure:
    """PSI over reference quantile bins plus one bin for missing values (every row counted)."""
    finite = sides.reference[~np.isnan(sides.reference)]
    if len(finite) > EDGE_SAMPLE:  # quantile edges from a seeded sample: the shares still use every row
        finite = finite[np.random.default_rng(0).integers(0, len(finite), EDGE_SAMPLE)]
    quantiles = np.linspace(0, 1, sides.bins + 1)[1:-1]
    edges = np.unique(np.quantile(finite, quantiles)) if finite.size else np.array([])
    n_bins = len(edges) + 2  # value bins plus one bin for missing values

    def shares(values: np.ndarray) -> np.ndarray:
        codes = np.searchsorted(edges, values, side="right")
        codes[np.isnan(values)] = n_bins - 1
        return _shares(np.bincount(codes, minlength=n_bins).astype("float64"))

    return Measure(psi_of_shares(shares(sides.reference), shares(sides.current)))


def categorical_psi(counts: Counts) -> Measure:
    """PSI over category shares."""
    return Measure(psi_of_shares(_shares(counts.table[0]), _shares(counts.table[1])))


def _sample(values: np.ndarray, seed: int) -> np.ndarray:
    """At most KS_SAMPLE values, drawn with replacement (cheap; D is estimated the same way)."""
    if len(values) <= KS_SAMPLE:
        return values
    return values[np.random.default_rng(seed).integers(0, len(values), KS_SAMPLE)]


def ks(sides: Numbers) -> Measure:
    """Two-sample Kolmogorov-Smirnov test on the non-missing values: D (the largest gap between
    the two CDFs) and its p-value, on seeded samples above KS_SAMPLE values per side.

    D and p are scipy's ``ks_2samp(method="asymp")`` of the samples (Smirnov's distribution),
    computed from the CDF gaps the Wasserstein row shares. The p-value is that of the samples:
    valid, with less power than all rows would give. It never changes a decision in practice: a
    shift large enough to matter (D > 0.1) has p far below any alpha at 100,000 rows per side.
    """
    ref, cur = sides.samples
    if not len(ref) or not len(cur):
        return Measure(0.0, 1.0)
    _, gaps = sides.cdf_gaps
    d = float(max(np.max(gaps), np.clip(-np.min(gaps), 0.0, 1.0)))
    pairs = len(ref) * len(cur) / (len(ref) + len(cur))
    return Measure(d, float(np.clip(stats.kstwo.sf(d, np.round(pairs)), 0.0, 1.0)))


def wasserstein(sides: Numbers) -> Measure:
    """The normed Wasserstein distance: Wasserstein-1 between the two sides (the area between
    their CDFs, in the column's unit) divided by the reference's standard deviation, on the
    samples KS reads. A mean shift of k standard deviations reads k, whatever the unit.

    Evidently's default for numeric columns of more than 1,000 rows (drift at >= 0.1), with
    the same floor of 0.001 for the standard deviation of a constant reference.
    """
    ref, cur = sides.samples
    if not len(ref) or not len(cur):
        return Measure(0.0)
    points, gaps = sides.cdf_gaps
    distance = float(np.sum(np.abs(gaps[:-1]) * np.diff(points)))
    return Measure(distance / max(float(np.std(ref)), STD_FLOOR))


def chi2(counts: Counts) -> tuple[float, float, float]:
    """(chi2, p-value, Cramér's V = sqrt(chi2 / n)) of the 2 x k table of counts."""
    if counts.table.shape[1] < 2:
        return 0.0, 1.0, 0.0  # one category on both sides: nothing can differ
    statistic, p_value, _, _ = stats.chi2_contingency(counts.table, correction=False)
    return float(statistic), float(p_value), float(np.sqrt(statistic / counts.table.sum()))


def jensen_shannon(counts: Counts) -> Measure:
    """The Jensen-Shannon distance (natural log: between 0 and sqrt(ln 2) = 0.83) of the two
    category shares, missing a category: Evidently's default for categorical columns of more
    than 1,000 rows (drift at >= 0.1). A share s moved between two categories reads about
    s * sqrt(sum(1 / share) / 8) for small s."""
    ref, cur = _shares(counts.table[0]), _shares(counts.table[1])
    if not ref.sum() or not cur.sum():
        return Measure(0.0)
    middle = (ref + cur) / 2
    divergence = (special.rel_entr(ref, middle).sum() + special.rel_entr(cur, middle).sum()) / 2
    return Measure(float(np.sqrt(max(divergence, 0.0))))


def chi2_test(counts: Counts) -> Measure:
    """The chi-square test of the table of counts: Cramér's V as its effect size, and its p-value."""
    _, p_value, cramers_v = chi2(counts)
    return Measure(cramers_v, p_value)


# -- the registry --------------------------------------------------------------------------

STATISTICS: tuple[Statistic, ...] = (
    Statistic("psi", "PSI", {NUMERIC: numeric_psi, CATEGORICAL: categorical_psi}, threshold="psi_threshold"),
    Statistic("wasserstein", "normed Wasserstein", {NUMERIC: wasserstein}, threshold="wasserstein_threshold"),
    Statistic("jensen_shannon", "Jensen-Shannon", {CATEGORICAL: jensen_shannon}, threshold="jensen_shannon_threshold"),
    Statistic("ks", "KS D", {NUMERIC: ks}, threshold="effect_threshold", test=True, symbol="D"),
    Statistic("chi2", "Cramér's V", {CATEGORICAL: chi2_test}, threshold="effect_threshold", test=True, symbol="V"),
)


def statistics() -> tuple[Statistic, ...]:
    """Every row (read at call time, so a test may add one)."""
    return STATISTICS


def applying(kind: str) -> tuple[Statistic, ...]:
    """The rows computed on a column of ``kind``: its shift statistics, then its test."""
    rows = [row for row in statistics() if kind in row.compute]
    return (*(r for r in rows if not r.test), *(r for r in rows if r.test))


def kind_test(kind: str) -> Statistic:
    """The one significance test of ``kind``."""
    (test,) = (row for row in statistics() if row.test and kind in row.compute)
    return test


def measure(kind: str, sides: Numbers | Counts) -> dict[str, Measure]:
    """Every row of ``kind`` on one column's prepared inputs, by row name."""
    return {row.name: row.compute[kind](sides) for row in applying(kind)}


def threshold_fields() -> tuple[str, ...]:
    """The ``MonitoringSpec`` fields the rows are judged against, in the rows' order."""
    return tuple(dict.fromkeys(row.threshold for row in statistics()))


def thresholds(monitoring: MonitoringSpec | None = None, /, **given: float) -> dict[str, float]:
    """Each threshold field's value: ``given``, else ``monitoring``'s, else the spec's default.

    TypeError for a name that is no row's threshold (a typo must not pass silently).
    """
    unknown = sorted(set(given) - set(threshold_fields()))
    if unknown:
        raise TypeError(f"unknown drift threshold(s) {unknown}; known: {list(threshold_fields())}")
    values = {}
    for name in threshold_fields():
        default = getattr(monitoring, name) if monitoring is not None else MonitoringSpec.model_fields[name].default
        values[name] = float(given.get(name, default))
    return values


def feature_thresholds(monitoring: MonitoringSpec) -> dict[str, dict[str, float]]:
    """The thresholds ``monitoring.features`` sets per column (only those it sets), by column."""
    return {
        column: {name: float(value) for name, value in own.model_dump().items() if value is not None}
        for column, own in monitoring.features.items()
    }


def kind_limits(kind: str, limits: Mapping[str, float]) -> dict[str, float]:
    """The thresholds the rows of ``kind`` are judged against, from ``limits`` (one column's)."""
    return {row.threshold: limits[row.threshold] for row in applying(kind)}


def judge(
    kind: str, measures: Mapping[str, Measure], corrected_alpha: float, limits: Mapping[str, float]
) -> tuple[bool, str]:
    """(drifted, reason) of one column: significant by its kind's test and large by any row."""
    test = kind_test(kind)
    p_value = measures[test.name].p_value
    significant = p_value is not None and p_value < corrected_alpha
    rows = applying(kind)
    large = any(measures[row.name].value > limits[row.threshold] for row in rows)
    values = [f"{row.label}={measures[row.name].value:.3f}" for row in rows]
    if significant and large:
        return True, f"p={p_value:.2g} < {corrected_alpha:.2g} and {' / '.join(values)} large"
    if significant:
        return False, f"significant (p={p_value:.2g}) but small ({', '.join(values)})"
    if large:
        return False, f"large ({', '.join(values)}) but not significant (p={p_value:.2g})"
    return False, "stable"
