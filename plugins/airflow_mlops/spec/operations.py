"""The operations sections: ``deployment``, ``monitoring``, ``scoring``."""

from __future__ import annotations

from pydantic import Field, model_validator

from airflow_mlops.spec.base import Strict


class DeploymentSpec(Strict):
    """The deploy step after a promotion: the new champion answers real rows, or the alias goes back."""

    smoke_rows: int = Field(default=50, ge=1, le=10_000, description="Test-split rows the smoke test sends.")
    conn_id: str | None = Field(
        default=None,
        description="Airflow HTTP connection of the running serving app (host, port; password = bearer token). "
        "When set, the deploy step also waits for that app to load the new champion and queries it.",
    )
    ready_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long the running app may take to swap to the new champion."
    )


WASSERSTEIN_HELP = "Normed Wasserstein distance (Wasserstein-1 / reference std) that matters (numeric)."
JENSEN_SHANNON_HELP = "Jensen-Shannon distance of the category shares that matters (categorical)."


# The thresholds of statistics of one kind of feature only (the drift statistics registry agrees: a test checks).
KIND_THRESHOLDS = {"wasserstein_threshold": "numeric", "jensen_shannon_threshold": "categorical"}


class FeatureThresholdsSpec(Strict):
    """One feature's own drift thresholds (``monitoring.features.<column>``); an unset one is the
    section's. The fields are the threshold fields of ``MonitoringSpec``."""

    psi_threshold: float | None = Field(default=None, gt=0.0)
    effect_threshold: float | None = Field(default=None, gt=0.0, le=1.0, description="KS D or Cramér's V.")
    wasserstein_threshold: float | None = Field(default=None, gt=0.0, description=WASSERSTEIN_HELP)
    jensen_shannon_threshold: float | None = Field(default=None, gt=0.0, le=1.0, description=JENSEN_SHANNON_HELP)


class MonitoringSpec(Strict):
    """Drift monitoring: a feature drifts when its test is significant (p < alpha / features)
    and the shift is large (PSI > psi_threshold, normed Wasserstein > wasserstein_threshold,
    Jensen-Shannon > jensen_shannon_threshold, or KS D / Cramér's V > effect_threshold)."""

    cron: str | None = "@daily"
    psi_threshold: float = Field(default=0.2, gt=0.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0, description="Significance level, before Bonferroni.")
    effect_threshold: float = Field(default=0.1, gt=0.0, le=1.0, description="KS D or Cramér's V that matters.")
    wasserstein_threshold: float = Field(default=0.1, gt=0.0, description=WASSERSTEIN_HELP)
    jensen_shannon_threshold: float = Field(default=0.1, gt=0.0, le=1.0, description=JENSEN_SHANNON_HELP)
    features: dict[str, FeatureThresholdsSpec] = Field(
        default_factory=dict,
        description="Thresholds of single features, by column name (features of data.features): "
        "{column: {psi_threshold, effect_threshold, wasserstein_threshold, jensen_shannon_threshold}}.",
    )
    alert_conn_id: str | None = Field(
        default=None, description="Airflow connection of a webhook that receives a JSON alert when drift is found."
    )
    min_drifted_features: int = Field(default=1, ge=1)
    bins: int = Field(default=10, ge=2, le=100)
    lookback_hours: float = Field(
        default=24.0,
        gt=0.0,
        description="A calendar run compares the predictions the champion logged in the last this many hours "
        "(date partitions, then the logged_at column) with its training data.",
    )
    lookback_batches: int | None = Field(
        default=None,
        ge=1,
        description="Instead of a time window, read the newest this many prediction-log files (one per scored "
        "input file; a serving worker writes one every few seconds). Not together with lookback_hours.",
    )
    max_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="At most this many logged predictions are compared, the newest: bounds monitoring memory.",
    )
    min_labeled_rows: int = Field(
        default=200, ge=1, description="Delayed labels joined to predictions needed to judge performance decay."
    )
    max_metric_drop: float = Field(
        default=0.05,
        ge=0.0,
        description="Performance decays when promotion.metric on the labeled predictions is worse than the "
        "champion's test value by more than this (absolute; the metric's direction is respected).",
    )
    max_slice_metric_drop: float = Field(
        default=0.1,
        ge=0.0,
        description="A slice (a value of an evaluation.slices column) decays when promotion.metric on its "
        "labeled predictions is worse than the champion's test value on that slice by more than this.",
    )
    min_slice_rows: int = Field(
        default=100, ge=1, description="Labeled predictions a slice needs before its decay is judged."
    )
    retrain_on_slice_decay: bool = Field(
        default=False,
        description="A decayed slice also requests retraining (retrain reason slice_decay); by default it "
        "is only reported (alerts: slice_decay).",
    )
    max_calibration_error: float = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="The estimate without labels trusts the champion's raw scores when their test ECE is at "
        "most this, else its isotonic map when that one's cross-fitted ECE is; otherwise no estimate.",
    )
    estimated_metric_drop: float = Field(
        default=0.05,
        ge=0.0,
        description="The estimate has decayed when the estimated promotion.metric is worse than the "
        "champion's test value by more than this (absolute).",
    )
    use_estimate: bool = Field(
        default=False,
        description="An estimated decay requests retraining (retrain reason estimated_decay); by default it "
        "is only reported (alerts: estimated_decay).",
    )

    # Health alerts (``core.operations.health``): None turns a check off.
    max_silence_hours: float | None = Field(
        default=None,
        gt=0.0,
        description="Alert when no prediction was logged for this many hours (the model stopped answering, "
        "or its log stopped): checked on every monitoring run, the calendar ones included.",
    )
    max_label_lag_hours: float | None = Field(
        default=None,
        gt=0.0,
        description="Alert when no delayed-label file arrived in lake/labels for this many hours "
        "(counted from the first logged prediction while none ever arrived).",
    )
    max_champion_age_days: float | None = Field(
        default=None,
        gt=0.0,
        description="Alert when the champion has held the alias for more than this many days (since its "
        "promotion, from the promotion history).",
    )
    max_run_minutes: float | None = Field(
        default=None,
        gt=0.0,
        description="Alert when a monitoring run has not succeeded this many minutes after it was queued "
        "(an Airflow Deadline Alert on the monitoring DAG: a run that failed, hangs or waits for a worker).",
    )

    @model_validator(mode="after")
    def _one_lookback(self) -> MonitoringSpec:
        if self.lookback_batches is not None and "lookback_hours" in self.model_fields_set:
            raise ValueError("give lookback_hours (a time window) or lookback_batches (newest files), not both")
        return self


class ScoringSpec(Strict):
    """Batch scoring with the champion."""

    chunk_rows: int = Field(
        default=100_000,
        ge=1,
        description="Rows read, scored and logged at a time: bounds scoring memory whatever the file's size.",
    )
