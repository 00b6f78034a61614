"""The model-engineering sections: ``model`` (candidates, search), ``evaluation``, ``packaging``, ``promotion``."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from airflow_mlops.spec.base import Strict
from airflow_mlops.spec.metrics import LOWER_IS_BETTER

SearchValue = list[Any] | dict[str, list[float]]


class SearchSpec(Strict):
    """A hyperparameter search space: every combination (grid) or ``n_iter`` seeded draws (random).

    A value is a list of choices; for ``random`` it may also be ``{uniform: [low, high]}``,
    ``{loguniform: [low, high]}`` or ``{randint: [low, high]}`` (high exclusive).
    """

    method: Literal["grid", "random"] = "grid"
    space: dict[str, SearchValue] = Field(default_factory=dict)
    n_iter: int = Field(default=10, ge=1, description="random: how many draws.")

    @model_validator(mode="after")
    def _space_is_usable(self) -> SearchSpec:
        for name, value in self.space.items():
            if isinstance(value, list):
                if not value:
                    raise ValueError(f"search.space.{name} is an empty list")
                continue
            if self.method == "grid":
                raise ValueError(f"search.space.{name}: a grid takes a list of values")
            if len(value) != 1 or next(iter(value)) not in ("uniform", "loguniform", "randint"):
                raise ValueError(f"search.space.{name}: use one of uniform, loguniform, randint: [low, high]")
            ((kind, bounds),) = value.items()
            if len(bounds) != 2 or not bounds[0] < bounds[1] or (kind == "loguniform" and bounds[0] <= 0):
                raise ValueError(f"search.space.{name}.{kind}: needs [low, high] with low < high (low > 0 for log)")
        return self


class CandidateSpec(Strict):
    """One algorithm to try: an estimator, fixed params and an optional search space."""

    name: str | None = Field(default=None, description="Label in MLflow and the Airflow UI (default: estimator).")
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    search: SearchSpec | None = None

    def trial_count(self) -> int:
        if self.search is None or not self.search.space:
            return 1
        if self.search.method == "random":
            return self.search.n_iter
        return math.prod(len(values) for values in self.search.space.values() if isinstance(values, list))


class PreprocessingSpec(Strict):
    """Feature engineering fitted into the model's Pipeline (so serving applies it too)."""

    scale: Literal["auto", "standard", "minmax", "none"] = Field(
        default="auto",
        description="auto: standard scaling for linear and distance-based models, none for trees "
        "(they ignore scale, and unscaled thresholds convert to ONNX exactly).",
    )
    encoding: Literal["onehot", "ordinal"] = "onehot"


class ModelSpec(Strict):
    """The model: one ``estimator`` (with ``params``), or several ``candidates`` compared on the
    validation split, each trial a mapped Airflow task and an MLflow child run."""

    task: Literal["classification", "regression"] = "classification"
    estimator: str | None = Field(
        default=None, description="A name from the estimator allow-list, or an explicit dotted path to a class."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    candidates: list[CandidateSpec] = Field(default_factory=list)
    selection_metric: str | None = Field(
        default=None,
        description="Metric on the validation split that picks the best trial (default: promotion.metric).",
    )
    max_trials: int = Field(default=50, ge=1, description="Refuse a search that would expand into more trials.")
    refit_on_validation: bool = Field(
        default=True, description="Refit the winner on train + validation before the hold-out test."
    )
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    cache: bool = Field(
        default=True,
        description="Reuse a trial's result when the same trial already ran on the same split with the same "
        "code, and skip training when a registered version already learned this data with this spec and code.",
    )
    registered_name: str | None = None
    seed: int = 42
    code_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The version of training code the spec cannot see (a labeling function, an estimator of "
        "your own): changing it changes the training fingerprint, so the code-change watcher retrains.",
    )
    threads_per_task: int | None = Field(
        default=None,
        ge=1,
        # How fast, not what is learned: left out of the spec fingerprint (lineage, step cache).
        exclude=True,
        description="BLAS/OpenMP threads per task that fits or evaluates a model (trials, select, evaluate, "
        "package, score). Default: max(1, cores // tasks that can run at once); see docs/concepts.md.",
    )

    @model_validator(mode="after")
    def _one_way_to_name_the_model(self) -> ModelSpec:
        if self.estimator and self.candidates:
            raise ValueError("give model.estimator (one model) or model.candidates (a comparison), not both")
        if not self.estimator and not self.candidates:
            raise ValueError("model needs an estimator or a list of candidates")
        if self.params and not self.estimator:
            raise ValueError("model.params go with model.estimator; put them in each candidate's params")
        total = sum(candidate.trial_count() for candidate in self.candidate_list())
        if total > self.max_trials:
            raise ValueError(
                f"the candidates expand into {total} trials, more than model.max_trials ({self.max_trials})"
            )
        return self

    def candidate_list(self) -> list[CandidateSpec]:
        """The candidates, with a single ``estimator`` read as a one-candidate list."""
        if self.candidates:
            return self.candidates
        assert self.estimator is not None
        return [CandidateSpec(estimator=self.estimator, params=self.params)]


class RequirementsSpec(Strict):
    """Non-functional requirements of a candidate's ONNX graph and package, checked by the gate.

    Every figure is measured at packaging whether or not a limit is set (MLflow metrics
    ``nfr_*``, the model card, the ``gate_verdict`` tag); only the limits given here gate.
    Latency is one ONNX Runtime call in the packaging task's process on rows of the test
    split, with ``threads`` intra-op threads (the serving app's ``--onnx-threads`` default is 1).
    Sizes and memory are in MB of 10^6 bytes.
    """

    max_p99_latency_ms: float | None = Field(
        default=None, gt=0, description="p99 of one ONNX Runtime call for 1 row, in milliseconds."
    )
    max_p99_batch_latency_ms: float | None = Field(
        default=None, gt=0, description="p99 of one ONNX Runtime call for batch_rows rows, in milliseconds."
    )
    batch_rows: int = Field(default=100, ge=2, le=100_000, description="Rows per call of the batch latency.")
    threads: int = Field(default=1, ge=1, le=64, description="ONNX Runtime intra-op threads while timing.")
    max_model_mb: float | None = Field(
        default=None, gt=0, description="The packaged MLflow model folder on disk (skops file, MLmodel, ...)."
    )
    max_onnx_mb: float | None = Field(default=None, gt=0, description="The ONNX graph file.")
    max_prediction_memory_mb: float | None = Field(
        default=None,
        gt=0,
        description="Peak resident memory one batch_rows prediction adds to a process that loaded the graph.",
    )

    def limits(self) -> dict[str, float]:
        """The limits set, by field name."""
        return {name: value for name, value in self.model_dump().items() if name.startswith("max_") and value}


class PromotionSpec(Strict):
    """The gate a candidate must pass before the `champion` alias moves to it.

    The direction of every metric follows from its name (rmse, mae, log_loss improve
    downwards), so a spec cannot promote a worse model by forgetting a flag.
    """

    metric: str = "roc_auc"
    min_improvement: float = Field(default=0.0, ge=0.0)
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Absolute floors (or ceilings for lower-is-better metrics)."
    )
    require_approval: bool = Field(
        default=False, description="A person approves each promotion in the Airflow UI (human-in-the-loop)."
    )
    approval_timeout_hours: float | None = Field(
        default=None, gt=0, description="Without an answer by then the promotion is rejected."
    )
    block_on_validation_warnings: bool = Field(
        default=False,
        description="A warning-severity expectation that failed on the training data fails the gate "
        "(warnings are always tagged on the version, listed in its model card and in the gate's reasons).",
    )
    requirements: RequirementsSpec = Field(
        default_factory=RequirementsSpec,
        description="Latency, size and memory limits: measured always, a candidate over a limit is not promoted.",
    )

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER


class EvaluationSpec(Strict):
    """What the evaluation of a candidate on the hold-out test split reports besides its metrics."""

    slices: list[str] = Field(
        default_factory=list, description="Categorical features to report metrics per value of (e.g. region)."
    )
    plots: bool = Field(default=True, description="Log confusion matrix, ROC/PR curves or residuals, importances.")


class PackagingSpec(Strict):
    """How the model is packaged beside its MLflow (skops) form."""

    onnx: Literal["required", "optional", "off"] = Field(
        default="required",
        description="required: no ONNX export or a parity gap above 1e-4 fails the gate; "
        "optional: export when possible, never block; off: no export.",
    )
