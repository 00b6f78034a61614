"""Per-feature data drift between a reference (training) table and current data.

Every feature gets the statistics of its kind (``statistics``: one row per statistic) and
the decision rule over them: it drifts when its test is significant after a Bonferroni
correction (p < ``alpha`` / number of features) and some statistic is large (PSI >
``psi_threshold``, normed Wasserstein > ``wasserstein_threshold`` (numbers), Jensen-Shannon >
``jensen_shannon_threshold`` (categories), or the test's effect size, KS D or Cramér's V, >
``effect_threshold``).
The batch drifts when at least ``min_drifted_features`` features drift. The model's output
is judged the same way (``prediction_drift``, ``predicted_label_drift``), beside the features.

Thresholds are keyword arguments named after ``MonitoringSpec``'s fields
(``statistics.thresholds``: ``**thresholds(spec.monitoring)``), their defaults the spec's;
``per_feature`` overrides some of them for single columns
(``statistics.feature_thresholds(spec.monitoring)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.operations.drift import statistics as drift_stats
from airflow_mlops.core.operations.drift.statistics import CATEGORICAL, NUMERIC, Counts, Measure, Numbers


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    drifted: bool
    ks_statistic: float | None = None
    test: str = ""
    p_value: float | None = None
    effect: float | None = None  # the test's effect size: KS D (numeric) or Cramér's V (categorical)
    reason: str = ""
    shifts: dict[str, float] = field(default_factory=dict)  # every shift statistic's value by name (PSI too)
    thresholds: dict[str, float] = field(default_factory=dict)  # what this feature's rows were judged against
    own_thresholds: list[str] = field(default_factory=list)  # those of them set for this feature alone


@dataclass
class DriftReport:
    drift_detected: bool
    drifted_features: list[str]
    min_drifted_features: int
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift] = field(default_factory=list)
    alpha: float = 0.01
    thresholds: dict[str, float] = field(default_factory=drift_stats.thresholds)  # MonitoringSpec field -> value

    @property
    def psi_threshold(self) -> float:
        return self.thresholds["psi_threshold"]

    def scores(self) -> dict[str, float]:
        return {f.feature: round(f.psi, 6) for f in self.features}

    def as_dict(self) -> dict[str, Any]:
        """Plain values; each threshold is a key of its own (``psi_threshold``, ``effect_threshold``)."""
        out = asdict(self)
        thresholds = out.pop("thresholds")
        return {**out, **thresholds}


def numeric_psi(reference: pd.Series, current: pd.Series, bins: int) -> float:
    """PSI of a numeric column over ``bins`` reference quantile bins (and a bin for missing values)."""
    return drift_stats.numeric_psi(Numbers(drift_stats.floats(reference), drift_stats.floats(current), bins)).value


def categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical column over category shares (missing is a category)."""
    return drift_stats.categorical_psi(drift_stats.category_counts(reference, current)).value


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    min_drifted_features: int = 1,
    bins: int = 10,
    alpha: float = 0.01,
    per_feature: Mapping[str, Mapping[str, float]] | None = None,
    **thresholds: float,
) -> DriftReport:
    """Compare every feature of ``current`` with ``reference`` and apply the decision rule.

    ``per_feature`` maps a column to the thresholds it is judged against instead of
    ``thresholds`` (``monitoring.features``); a column that is no feature is a ValueError.
    """
    limits = drift_stats.thresholds(**thresholds)
    given = {column: dict(values) for column, values in (per_feature or {}).items()}
    own = {column: drift_stats.thresholds(**{**limits, **values}) for column, values in given.items()}
    strangers = sorted(set(own) - {*numeric, *categorical})
    if strangers:
        raise ValueError(f"thresholds given for columns that are not features: {strangers}")
    missing = [c for c in [*numeric, *categorical] if c not in current.columns]
    if missing:
        raise ValueError(f"current data lacks feature columns {missing}")
    if current.empty or reference.empty:
        raise ValueError(
            f"cannot measure drift on empty data (reference {len(reference)} rows, current {len(current)} rows)"
        )
    corrected = alpha / max(len(numeric) + len(categorical), 1)
    features = []
    for kind, columns in ((NUMERIC, numeric), (CATEGORICAL, categorical)):
        for column in columns:
            sides: Numbers | Counts = (
                Numbers(drift_stats.floats(reference[column]), drift_stats.floats(current[column]), bins)
                if kind == NUMERIC
                else drift_stats.category_counts(reference[column], current[column])
            )
            measures = drift_stats.measure(kind, sides)
            limits_of = own.get(column, limits)
            features.append(_judge(column, kind, kind, measures, corrected, limits_of, given.get(column)))
    drifted = [f.feature for f in features if f.drifted]
    return DriftReport(
        drift_detected=len(drifted) >= min_drifted_features,
        drifted_features=drifted,
        min_drifted_features=min_drifted_features,
        reference_rows=len(reference),
        current_rows=len(current),
        features=features,
        alpha=alpha,
        thresholds=limits,
    )


def _judge(
    column: str,
    shown: str,
    kind: str,
    measures: dict[str, Measure],
    corrected_alpha: float,
    limits: dict[str, float],
    own: Mapping[str, float] | None = None,
) -> FeatureDrift:
    """One column's verdict; ``shown`` is the kind the report names (``prediction`` for the output).

    ``limits`` are the column's thresholds, ``own`` those set for it alone (``per_feature``)."""
    drifted, reason = drift_stats.judge(kind, measures, corrected_alpha, limits)
    test = drift_stats.kind_test(kind)
    effect, p_value = measures[test.name]
    used = drift_stats.kind_limits(kind, limits)
    return FeatureDrift(
        feature=column,
        kind=shown,
        psi=measures[drift_stats.SCORE].value,
        drifted=drifted,
        ks_statistic=effect if test.name == "ks" else None,  # a field of the report from before the registry
        test=test.name,
        p_value=p_value,
        effect=effect,
        reason=reason,
        shifts={row.name: measures[row.name].value for row in drift_stats.applying(kind) if not row.test},
        thresholds=used,
        own_thresholds=[name for name in used if name in (own or {})],
    )


def prediction_drift(
    reference_scores: np.ndarray,
    current_scores: np.ndarray,
    bins: int = 10,
    alpha: float = 0.01,
    **thresholds: float,
) -> FeatureDrift:
    """Drift of the model's output: its scores on the reference data vs the logged ones.

    Same test and rule as a numeric feature, at ``alpha`` (one test, no correction).
    Reported beside the features; it does not count toward ``min_drifted_features``,
    because a changed output is a consequence of input drift (or of a changed world) and
    the features say which.
    """
    sides = Numbers(np.asarray(reference_scores, dtype="float64"), np.asarray(current_scores, dtype="float64"), bins)
    limits = drift_stats.thresholds(**thresholds)
    return _judge("prediction", "prediction", NUMERIC, drift_stats.measure(NUMERIC, sides), alpha, limits)


def predicted_label_drift(
    reference_labels: np.ndarray,
    current_labels: np.ndarray,
    alpha: float = 0.01,
    **thresholds: float,
) -> FeatureDrift:
    """Drift of a classifier of more than two classes: the distribution of its predicted labels
    on the reference data vs the labels it logged (chi-square, PSI, Cramér's V over every
    class), judged like a categorical feature at ``alpha``."""
    reference, current = pd.Series(reference_labels).astype(str), pd.Series(current_labels).astype(str)
    counts: Counts = drift_stats.category_counts(reference, current)
    limits = drift_stats.thresholds(**thresholds)
    return _judge("prediction", "prediction", CATEGORICAL, drift_stats.measure(CATEGORICAL, counts), alpha, limits)
