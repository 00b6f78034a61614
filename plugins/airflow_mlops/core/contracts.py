"""What travels between the tasks of a pipeline: the shape of every task result (XCom) and of
the Asset event metadata the tasks emit.

Each is a small JSON document of references (URIs, MLflow run ids, model versions), counts,
fingerprints and verdicts, never the data itself: a task hands the next one where to read,
not what. The stage functions (``core.data.stages``, ``core.model.stages``,
``core.model.release``, ``core.operations.stages``) build and accept these types, the
operators return them. Typed with the standard library only, so importing this module costs
nothing; the operators still import it only under ``TYPE_CHECKING`` (the DAG parse path
imports no ``airflow_mlops.core`` module, ruff TID253).

A key marked ``NotRequired`` is absent from some results (an optional part, an older
result); readers use ``.get`` for those. Values typed ``dict[str, Any]`` are genuinely open:
estimator params, metric dicts keyed by metric name, JSON reports.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# -- data: ingest, validate, split ---------------------------------------------------------------


class SqlSourceRead(TypedDict):
    """What a ``data.source.sql`` source read (``core.data.sql_source``): no query text, no credentials."""

    source: str
    conn_id: str
    query_sha: str
    landed: str | None  # the Parquet file written; None when an incremental read found nothing new
    rows: int
    chunks: int
    watermark_column: str | None
    after: dict[str, Any] | None  # the watermark read from (exclusive; ``encode_watermark``)
    watermark: dict[str, Any] | None  # the largest watermark read


class DatasetRef(TypedDict):
    """The ingest task's result: the run-scoped dataset, its profile and what it was read from."""

    uri: str
    rows: int
    unlabeled_rows: int
    duplicates_dropped: int
    fingerprint: str
    profile_uri: str
    sources: list[str]
    rows_by_source: dict[str, int]
    duplicates_by_source: dict[str, int]
    batches_skipped_schema: int
    skipped_schema: dict[str, list[str]]  # batch URI -> the columns it lacks
    claimed_sources: list[str]  # the run's claimed files that were read
    claimed_left_out: dict[str, str]  # claimed file -> why it was not read
    labeled_by_source: dict[str, int]  # claimed files only: what validation judges per batch
    classes_by_source: dict[str, dict[str, int] | None]
    sql: NotRequired[SqlSourceRead]


class ValidationResult(TypedDict):
    """The validate task's result; the warnings themselves are in the report (``carried_warnings``)."""

    uri: str
    report_uri: str
    evaluated: int
    inferred: int
    warnings: int
    batch_warnings: dict[str, list[str]]  # landed batch URI -> its own warnings


class SplitPart(TypedDict):
    uri: str
    rows: int
    fingerprint: str


class SplitRefs(TypedDict):
    """The split task's result: one Parquet file per part; ``test`` is the gate's hold-out."""

    train: SplitPart
    validation: NotRequired[SplitPart]  # with split.ratios.validation
    test: SplitPart
    clip_bounds: NotRequired[dict[str, list[float | None]]]  # with cleaning.clip: column -> [low, high]


# -- model: trials, selection, evaluation, packaging ---------------------------------------------


class CandidateTrial(TypedDict):
    """One point of the search: a candidate estimator with its params (``core.model.tuning``)."""

    trial: int
    candidate: str
    estimator: str
    params: dict[str, Any]
    searched: list[str]  # the params drawn from the search space
    label: str  # unique within the run: the MLflow child run's and the mapped task's name


class Trial(CandidateTrial):
    """An item of the plan task's result: what one mapped trial task fits."""

    parent_run_id: str
    experiment_id: str
    trial_count: int  # how many trial tasks are mapped (the thread cap divides by it)


class TrialResult(TypedDict):
    """A trial task's result: its validation metrics and MLflow child run."""

    trial: int
    label: str
    candidate: str
    estimator: str
    params: dict[str, Any]
    parent_run_id: str
    experiment_id: str
    run_id: str
    metrics: dict[str, float]
    fit_seconds: float
    cached_from: str | None  # the earlier child run whose metrics were reused (model.cache)
    threads: int | None


class Winner(TypedDict):
    trial: int
    label: str
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, float]
    run_id: str


class TrainingResult(TypedDict):
    """The select (or train) task's result: the refit winner logged on the parent MLflow run."""

    run_id: str
    model_uri: str
    experiment_id: str
    winner: Winner
    trials: int


class Evaluation(TypedDict):
    """The evaluate task's result: candidate and champion metrics on the same test split."""

    candidate: dict[str, float]
    champion: dict[str, float] | None
    champion_error: str | None  # why the champion could not be evaluated
    champion_version: str | None
    slices: dict[str, dict[str, dict[str, Any]]]  # column -> value -> rows and metrics
    importance: dict[str, float]  # the ten most important inputs


class OnnxParity(TypedDict):
    """``core.model.packaging.ParityReport.as_dict``."""

    rows: int
    max_abs_diff: float
    max_scaled_diff: float
    relative_to_magnitude: bool
    rows_over_tolerance: int
    labels_agree: float
    tolerance: float
    passed: bool


class Package(TypedDict):
    """The package task's result: the ONNX graph and its parity, or why there is none."""

    onnx_uri: str | None
    parity: OnnxParity | None
    error: str | None
    policy: str  # packaging.onnx: off, optional or required
    # Latency, size and memory figures measured at packaging (``core.model.footprint``), by name
    # (``latency_p99_ms``, ``model_bytes``, ...), and why a group of them was not measured.
    nfr: NotRequired[dict[str, float]]
    nfr_unmeasured: NotRequired[dict[str, str]]  # "latency", "onnx_size", "memory" -> why not


# -- release: register, gate, promote ------------------------------------------------------------


class Registered(TypedDict):
    """The register task's result: the new model version."""

    name: str
    version: str


class ThresholdCheck(TypedDict):
    """One absolute threshold of ``promotion.thresholds`` against the candidate's value."""

    bound: float
    value: float | None  # None: the metric was not computed
    passed: bool
    relation: str  # ">=" (a floor) or "<=" (a ceiling: a lower-is-better metric)


class RequirementCheck(TypedDict):
    """One limit of ``promotion.requirements`` against the figure measured at packaging."""

    limit: float
    value: float | None  # in the limit's unit; None: not measured (``why``)
    unit: str  # "ms" or "MB" (10^6 bytes)
    passed: bool
    why: str | None  # why the figure is missing (no ONNX graph, the measurement failed)


class OnnxVerdict(TypedDict):
    """What the gate knew of the ONNX twin: its policy and parity, or why there is none."""

    policy: str  # packaging.onnx: off, optional, required
    exported: bool
    error: str | None
    passed: bool | None  # the parity check; None without a graph
    max_abs_diff: float | None
    rows: int | None
    tolerance: float | None
    labels_agree: float | None


class GateVerdict(TypedDict):
    """Every number the gate compared (``core.model.release.gate_candidate``): the ``gate_verdict``
    version tag (JSON) and the approval request's evidence (``core.model.evidence``)."""

    promote: bool
    metric: str  # the primary metric: the one the champion must be beaten on
    higher_is_better: bool
    candidate: float | None
    champion: float | None
    champion_version: str | None
    min_improvement: float
    improvement: float | None  # candidate - champion, signed so that > 0 is better
    thresholds: dict[str, ThresholdCheck]
    metrics: dict[str, dict[str, float] | None]  # "candidate", "champion": every test metric, same rows
    champion_error: str | None
    test_rows: int | None
    test_fingerprint: str | None
    onnx: OnnxVerdict | None
    nfr: dict[str, float]  # latency, size, memory measured at packaging (empty without a package)
    requirements: NotRequired[dict[str, RequirementCheck]]  # promotion.requirements field -> its check
    at: str


class ReplaySummary(TypedDict):
    """What of the offline replay travels with the gate result (the whole report is the ``replay`` tag)."""

    rows: int
    agreement: float | None
    score_psi: float | None
    labeled_rows: int
    metric_drop: float | None
    judged: bool
    passed: bool


class GateResult(TypedDict):
    """The gate task's result: the verdict, its reasons and the version it is about."""

    promote: bool
    reasons: list[str]
    metric: str
    candidate: float | None
    champion: float | None
    champion_version: str | None  # the champion the candidate was compared with
    name: str
    version: str
    validation_warnings: NotRequired[list[str]]  # with a validate result: its warnings, described
    verdict: NotRequired[GateVerdict]  # every number compared (a result from before it lacks the key)
    replay: NotRequired[ReplaySummary]  # with rollout.replay: the replay task's figures (core.model.replay)


class Approval(TypedDict):
    """A person's answer to the approval request: the ``approval`` version tag (JSON), for a
    rejection too (``core.model.release.record_approval``)."""

    decision: str  # "approved" or "rejected"
    by: str | None  # the responder's name; None when the deadline passed without an answer
    by_id: str | None
    at: str  # when the answer was given (or the deadline passed)
    comment: str | None
    timed_out: bool
    run: str | None  # "<dag_id>/<run_id>" of the request


class MoveExtra(TypedDict, total=False):
    """What a promotion or rollback adds to its record."""

    integrity: str  # what was checked (``core.registry.integrity``)
    rollback: bool
    forced: bool
    forced_past: list[str]
    manual: bool  # a move made outside airflow-mlops (MLflow's UI), recorded when next noticed
    moved_after: str | None  # a manual move: the ``at`` of the record before it (MLflow does not time aliases)
    automatic: bool  # a rollback the serving app's canary made on its own (``serving.canary``)
    figures: dict[str, Any]  # that rollback's figures: both sides' error rate, p99, the score PSI


class PromotionRecord(MoveExtra):
    """One move of the ``champion`` alias (``core.registry.promotion``): the promote and rollback
    tasks' result, an entry of the ``promotion_history`` tag and the champion Asset event's metadata."""

    id: str
    from_version: str | None
    to_version: str | None  # None: the alias was removed
    at: str
    by: str
    reason: str
    run: NotRequired[str]  # the Airflow run that asked: its retry finds the record


class AliasDrift(TypedDict):
    """The ``champion`` alias disagrees with the promotion history (``promotion.alias_drift``)."""

    alias_version: str | None  # where the alias is (None: removed)
    history_version: str | None  # where the newest record says it is (None: no record)
    since: str | None  # the newest record's ``at``: the alias moved some time after it


# -- operations: scoring, monitoring -------------------------------------------------------------


class ScoreSummary(TypedDict):
    """The score task's result (and ``summary.json`` of its run folder)."""

    model_name: str
    model_version: str
    rows: int
    inputs: list[str]
    prediction_log_uris: list[str]
    labeled_feedback_uris: list[str]  # labeled inputs copied into the training history


class PredictionDrift(TypedDict):
    psi: float
    ks: float | None
    drifted: bool


class PerformanceSummary(TypedDict):
    """The champion's metrics on its delayed labels (``core.operations.performance``), as XCom carries it."""

    metric: str
    value: float | None
    test_value: float | None
    drop: float | None
    max_metric_drop: float
    labeled_rows: int
    min_labeled_rows: int
    decayed: bool
    decision: str
    metrics: dict[str, float]


class PerformanceCheck(PerformanceSummary):
    """... and what the monitoring report and MLflow run also keep."""

    higher_is_better: bool
    unusable_label_files: list[str]


class SliceRow(TypedDict):
    """One slice (a value of an ``evaluation.slices`` column) on the labeled predictions vs the champion's test."""

    column: str
    value: str
    rows: int  # labeled predictions of the slice the metric used
    metric_value: float | None
    test_value: float | None  # the champion's on the slice's test rows (evaluation/slices.json)
    test_rows: int | None
    drop: float | None  # positive: worse than on the test split (the metric's direction respected)
    decayed: bool
    decision: str


class SliceCheck(TypedDict):
    """The slices watched on delayed labels (``core.operations.slices``)."""

    metric: str
    higher_is_better: bool
    max_slice_metric_drop: float
    min_slice_rows: int
    retrain: bool  # monitoring.retrain_on_slice_decay: a decay requests retraining, else only alerts
    decayed: bool
    decayed_slices: list[str]  # "column=value"
    judged: int  # slices with a decision
    decision: str
    slices: list[SliceRow]


class EstimateCheck(TypedDict):
    """The champion's metrics estimated from its logged scores, without labels (``core.operations.estimation``)."""

    metric: str
    higher_is_better: bool
    available: bool
    calibration: str  # which scores were trusted and why, or why none
    rows: int  # logged predictions of the monitoring window the estimate read
    min_rows: int
    value: float | None  # estimated promotion metric on the window
    test_value: float | None
    drop: float | None
    estimated_metric_drop: float
    metrics: dict[str, float]  # every estimated metric on the window
    labeled_estimate: dict[str, float] | None  # estimated on the labeled rows, beside the realised metrics
    retrain: bool  # monitoring.use_estimate: a decay requests retraining, else only alerts
    decayed: bool
    decision: str


class MonitorResult(TypedDict):
    """The drift check task's result."""

    drift_detected: bool
    drift_measured: bool
    current_rows: int
    drifted_features: list[str]
    scores: dict[str, float]  # feature -> PSI
    prediction_drift: PredictionDrift | None
    psi_threshold: float
    performance: PerformanceSummary | None
    performance_decay: bool
    slice_decay: bool
    decayed_slices: list[str]  # "column=value"; every slice's numbers are in the report
    estimate: EstimateCheck | None
    alerts: list[str]  # what was found but does not request retraining ("slice_decay", "estimated_decay")
    retrain: bool
    retrain_reasons: list[str]  # "drift", "performance_decay", "slice_decay", "estimated_decay"
    model_version: str
    report_uri: str
    html_report_uri: str
    mlflow_run_id: str
    reference_uri: NotRequired[str]  # the champion's training data the drift was measured against
    current_uris: NotRequired[list[str]]  # the prediction logs read (the lineage's inputs)


class DriftEvent(TypedDict, total=False):
    """The drift Asset event's metadata (the emit task's result): what of the drift check's result
    was there (a result from before the performance check lacks its keys) and the reasons."""

    drift_detected: bool
    drifted_features: list[str]
    scores: dict[str, float]
    psi_threshold: float
    performance: PerformanceSummary | None
    performance_decay: bool
    decayed_slices: list[str]
    estimate: EstimateCheck | None
    alerts: list[str]
    model_version: str
    report_uri: str
    html_report_uri: str
    mlflow_run_id: str
    retrain_reasons: list[str]


class Incident(TypedDict):
    """One open (or closed) health incident of the monitoring DAG (``core.operations.incidents``)."""

    id: str  # "<check>-<opened at>": the idempotency key of its alert and recovery messages
    check: str  # silence, label_lag, champion_age, monitoring_late
    summary: str  # what a person reads: "no prediction logged for 3.2 h (the last at ...)"
    since: str | None  # ISO time the condition counts from (the last prediction, the promotion, ...)
    opened_at: str
    opened_by: str  # the Airflow run (or the deadline) that opened it
    closed_at: NotRequired[str]
    closed_by: NotRequired[str]


class AlertMessage(TypedDict):
    """An alert or recovery waiting in the outbox of the incident state until every notifier took it."""

    id: str  # "<incident id>:alert" or "<incident id>:recovered": receivers may dedup by it
    kind: str  # "alert" or "recovered"
    pipeline: str
    incident: Incident
    at: str
    sent_to: list[str]  # the notifiers that accepted it ("<index>:<class name>")


class HealthResult(TypedDict):
    """The health check's result: what is open now, what opened and cleared in this run."""

    pipeline: str
    checked_at: str
    open: list[Incident]
    opened: list[str]  # checks whose incident this run opened
    cleared: list[str]  # checks whose incident this run closed
    findings: dict[str, Any]  # per enabled check: breached, summary, since
    messages: list[str]  # ids of the messages this run delivered
    undelivered: list[str]  # ids still in the outbox (a notifier failed: the retry sends them)


# -- landing: the claim events -------------------------------------------------------------------


class ClaimEvent(TypedDict):
    """A landing trigger's event payload (``core.landing.records.Claim.payload``): the claim the
    run takes (``operators.base.acknowledge_claims``) and the lake files it moved there."""

    claim_id: str
    claim_uri: str
    claimed: list[str]
    inbox: str
    delivery: int  # how many times the claim's event was fired
    duplicates: list[str]  # names of landed files that repeated a file already in the lake
