"""`rollout`: how a challenger becomes champion: replayed offline, served in shadow, baked as a canary.

All three are off by default. ``replay`` runs in the training DAG after the gate (task
``model.replay``) and can hold the promotion; ``shadow`` makes the gate's winner the registry's
``challenger`` and has the serving app score a share of live requests with it, off the request
path; ``canary`` has the serving app watch a new champion against the one it replaced for
``baking_minutes`` and roll the alias back on its own when a threshold is crossed.
How a rollout changes nothing that is trained: the section is outside the spec's fingerprint.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from airflow_mlops.spec.base import Strict


class ReplaySpec(Strict):
    """The candidate answers the rows the champion answered lately (the prediction log), offline."""

    enabled: bool = False
    lookback_days: int = Field(default=7, ge=1, le=366, description="Prediction-log date partitions read.")
    max_rows: int = Field(default=100_000, ge=1, description="At most this many logged rows, the newest.")
    min_rows: int = Field(
        default=100, ge=1, description="Fewer logged rows than this: the replay reports and does not judge."
    )
    min_agreement: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Hold the promotion when the share of rows whose predicted class equals the champion's "
        "(classification), or the correlation of the two models' values (regression), is below this.",
    )
    max_score_psi: float | None = Field(
        default=None, gt=0.0, description="Hold the promotion when the PSI of candidate vs champion scores is above."
    )
    max_metric_drop: float | None = Field(
        default=None,
        ge=0.0,
        description="Hold the promotion when promotion.metric of the candidate on the replayed rows whose delayed "
        "label arrived is worse than the champion's on the same rows by more than this (absolute).",
    )
    min_labeled_rows: int = Field(
        default=50, ge=1, description="Labeled replay rows needed before max_metric_drop is applied."
    )

    @property
    def judges(self) -> bool:
        """Whether the replay can hold a promotion (a condition is set)."""
        return any(v is not None for v in (self.min_agreement, self.max_score_psi, self.max_metric_drop))


class ShadowSpec(Strict):
    """The gate's winner (alias ``challenger``) scores a share of live requests beside the champion."""

    enabled: bool = False
    share: float = Field(default=0.1, gt=0.0, le=1.0, description="Share of live requests the challenger scores.")
    queue_requests: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Requests waiting for shadow scoring at most; a request arriving at a full queue is not "
        "shadowed (counted in /metrics as dropped).",
    )


class CanarySpec(Strict):
    """A new champion bakes: a share of traffic goes to it, the rest to the champion it replaced (the baseline,
    on the same traffic at the same time); a crossed threshold rolls the alias back automatically."""

    enabled: bool = False
    share: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Share of requests the new champion answers while it bakes."
    )
    baking_minutes: float = Field(default=30.0, gt=0.0, le=7 * 24 * 60, description="How long it bakes.")
    poll_seconds: float = Field(default=10.0, gt=0.0, le=3600, description="How often the figures are judged.")
    min_requests: int = Field(
        default=50, ge=1, description="Requests the new champion must have answered before it is judged."
    )
    max_error_rate: float = Field(
        default=0.01,
        ge=0.0,
        lt=1.0,
        description="Roll back when the share of the new champion's model runs that failed is above this "
        "(a failed run is answered by the baseline, the client sees no error).",
    )
    max_p99_latency_ratio: float = Field(
        default=2.0, gt=1.0, description="Roll back when its p99 model latency exceeds the baseline's times this."
    )
    max_score_psi: float = Field(
        default=0.25, gt=0.0, description="Roll back when the PSI of its scores against the baseline's is above."
    )


class RolloutSpec(Strict):
    """``rollout``: ``replay``, ``shadow`` and ``canary`` (each off unless ``enabled: true``)."""

    replay: ReplaySpec = Field(default_factory=ReplaySpec)
    shadow: ShadowSpec = Field(default_factory=ShadowSpec)
    canary: CanarySpec = Field(default_factory=CanarySpec)

    @model_validator(mode="after")
    def _conditions_need_the_replay(self) -> RolloutSpec:
        if self.replay.judges and not self.replay.enabled:
            raise ValueError("rollout.replay: min_agreement, max_score_psi or max_metric_drop need enabled: true")
        return self
