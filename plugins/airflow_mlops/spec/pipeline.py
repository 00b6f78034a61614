"""The whole spec: ``PipelineSpec`` with its cross-section checks, YAML loading and error formatting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from airflow_mlops.spec.base import NAME_PATTERN, SpecError, Strict, column_name_problem
from airflow_mlops.spec.cleaning import CleaningSpec
from airflow_mlops.spec.data import DataSpec
from airflow_mlops.spec.labeling import LabelingSpec
from airflow_mlops.spec.metrics import TASK_METRICS
from airflow_mlops.spec.model import EvaluationSpec, ModelSpec, PackagingSpec, PromotionSpec
from airflow_mlops.spec.operations import KIND_THRESHOLDS, DeploymentSpec, MonitoringSpec, ScoringSpec
from airflow_mlops.spec.prediction_log import RESERVED_COLUMNS
from airflow_mlops.spec.rollout import RolloutSpec
from airflow_mlops.spec.schedule import ScheduleSpec
from airflow_mlops.spec.split import SplitSpec
from airflow_mlops.spec.validation import ValidationSpec


class RetriesSpec(Strict):
    """Retries of the data steps (ingest, validate, split) and of each trial after a fault of the
    infrastructure (a lost worker, a database or store outage). Bad data and a bad spec fail at
    once, never retried. Each of these tasks writes only run-scoped files (rewritten whole) or a
    trial run of its own, so a retry redoes its work without duplicating it."""

    count: int = Field(default=1, ge=0, le=10, description="Retries per task (0: none).")
    delay_seconds: float = Field(default=10.0, ge=0.0, le=3600.0, description="Wait before a retry.")


# The sections whose content shapes the trained model, and the fields inside them that do not.
TRAINING_FIELDS = ("data", "labeling", "cleaning", "split", "model", "packaging")
TRAINING_EXCLUDED = {
    "data": ("landing", "source.chunk_rows", "generator"),  # when a file is taken, memory, the demo's data
    "model": ("cache", "max_trials", "registered_name"),  # skip rules, a guard, a name
}


class PipelineSpec(Strict):
    """One ML use case: data, validation, model, promotion gate, monitoring, schedule."""

    name: str
    description: str = ""
    owner: str = "airflow-mlops"
    tags: list[str] = Field(default_factory=list)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    data: DataSpec
    labeling: LabelingSpec | None = None
    cleaning: CleaningSpec = Field(default_factory=CleaningSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    model: ModelSpec
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    packaging: PackagingSpec = Field(default_factory=PackagingSpec)
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    # How a challenger is rolled out changes nothing that is trained: outside the spec's fingerprint.
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, exclude=True)
    # How often a task is retried changes nothing that is trained: outside the spec's fingerprint.
    retries: RetriesSpec = Field(default_factory=RetriesSpec, exclude=True)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"'{value}' must be lowercase letters, digits and underscores, starting with a letter")
        return value

    @model_validator(mode="after")
    def _column_names_are_usable(self) -> PipelineSpec:
        named: dict[str, list[str]] = {
            "data.label": [self.data.label],
            "data.id_column": [self.data.id_column] if self.data.id_column is not None else [],
            "data.dtypes": list(self.data.dtypes),
            "data.renamed": [*self.data.renamed, *self.data.renamed.values()],
        }
        for where, names in named.items():
            for name in names:
                problem = column_name_problem(name)
                if problem:
                    raise ValueError(f"{where}: column {name!r} {problem}")
        return self

    @model_validator(mode="after")
    def _columns_do_not_collide(self) -> PipelineSpec:
        id_columns = {self.data.id_column} if self.data.id_column else set()
        reserved = {*id_columns, self.data.label}
        clash = reserved & {*self.data.features.all, *self.data.features.derived}
        if clash:
            raise ValueError(f"id/label column also listed as a feature (or derived feature): {sorted(clash)}")
        if self.data.id_column == self.data.label:
            raise ValueError("data.id_column and data.label must differ")
        taken = RESERVED_COLUMNS & {*id_columns, *self.data.features.all, *self.data.features.derived}
        if taken:
            raise ValueError(f"column names reserved for the prediction log: {sorted(taken)}; rename them")
        return self

    @model_validator(mode="after")
    def _renames_are_consistent(self) -> PipelineSpec:
        """``data.renamed`` maps names no longer used to names the spec uses."""
        if not self.data.renamed:
            return self
        used = self.used_columns
        problems = []
        for old, new in self.data.renamed.items():
            if old in used:
                problems.append(f"'{old}' is still a column of the spec; an old name must be one it no longer uses")
            if new not in used:
                problems.append(f"'{old}' is renamed to '{new}', which the spec does not use (a typo?)")
            if old == new:
                problems.append(f"'{old}' is renamed to itself")
        if problems:
            raise ValueError("data.renamed: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _cleaning_names_features(self) -> PipelineSpec:
        features = self.data.features
        unknown = {
            "cleaning.impute": sorted(set(self.cleaning.impute) - set(features.all)),
            "cleaning.clip": sorted(set(self.cleaning.clip) - set(features.numeric)),
            "cleaning.normalize": sorted(
                {c for n in self.cleaning.normalize for c in n.columns} - set(features.categorical)
            ),
            "evaluation.slices": sorted(set(self.evaluation.slices) - set(features.categorical)),
            "monitoring.features": sorted(set(self.monitoring.features) - {*features.numeric, *features.categorical}),
        }
        kinds = {"cleaning.clip": "numeric ", "evaluation.slices": "categorical "}
        problems = [
            f"{where} names {names}, not {kinds.get(where, '')}features" for where, names in unknown.items() if names
        ]
        for column, rule in self.cleaning.impute.items():
            if column in features.categorical and rule.strategy in ("median", "mean"):
                problems.append(f"cleaning.impute.{column}: '{rule.strategy}' needs a numeric column")
        for column, own in self.monitoring.features.items():
            kind = "numeric" if column in features.numeric else "categorical"
            for name in sorted(own.model_fields_set & set(KIND_THRESHOLDS)):
                if column in features.all and KIND_THRESHOLDS[name] != kind:
                    problems.append(
                        f"monitoring.features[{column!r}].{name} applies to {KIND_THRESHOLDS[name]} features; "
                        f"{column!r} is {kind}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _metrics_exist_for_task(self) -> PipelineSpec:
        known = TASK_METRICS[self.model.task]
        asked = {self.promotion.metric, *self.promotion.thresholds}
        if self.model.selection_metric:
            asked.add(self.model.selection_metric)
        unknown = asked - known
        if unknown:
            raise ValueError(
                f"metrics {sorted(unknown)} (promotion / model.selection_metric) are not computed for "
                f"{self.model.task}; use {sorted(known)}"
            )
        return self

    @model_validator(mode="after")
    def _monitoring_reasons_can_happen(self) -> PipelineSpec:
        """A retraining reason the pipeline can never produce is a spec mistake, not a quiet no-op."""
        monitoring = self.monitoring
        if monitoring.use_estimate and self.model.task != "classification":
            raise ValueError(
                "monitoring.use_estimate: the estimate without labels reads class probabilities; "
                f"a {self.model.task} model has none (set it to false)"
            )
        if monitoring.retrain_on_slice_decay and not self.evaluation.slices:
            raise ValueError("monitoring.retrain_on_slice_decay needs evaluation.slices (the columns to watch)")
        return self

    @model_validator(mode="after")
    def _requirements_have_a_graph(self) -> PipelineSpec:
        """A latency, ONNX size or memory limit measures the ONNX graph: ``packaging.onnx: off`` has none."""
        needing = sorted(n for n in self.promotion.requirements.limits() if n != "max_model_mb")
        if needing and self.packaging.onnx == "off":
            raise ValueError(
                f"promotion.requirements {needing} measure the ONNX graph, and packaging.onnx is off: "
                "set packaging.onnx to required or optional, or drop those limits"
            )
        return self

    @property
    def selection_metric(self) -> str:
        return self.model.selection_metric or self.promotion.metric

    @property
    def used_columns(self) -> set[str]:
        """Every column name the spec reads from the data (id, label, features, declared, split, join keys)."""
        data = self.data
        return {
            *([data.id_column] if data.id_column else []),
            data.label,
            *data.features.all,
            *data.dtypes,
            *(c for rule in data.enrich for c in (rule.on, *rule.columns)),
            *([self.split.time_column] if self.split.time_column else []),
            *([self.split.key] if self.split.key else []),
            *([self.labeling.join.on] if self.labeling and self.labeling.join else []),
        }

    @property
    def row_columns(self) -> list[str]:
        """The columns that make a row what the model learns from: the id (if any), the features, the label."""
        return [*([self.data.id_column] if self.data.id_column else []), *self.data.features.all, self.data.label]

    @property
    def declared_types(self) -> dict[str, str]:
        """Every column's declared type: feature defaults, the id as string, then ``data.dtypes``."""
        types: dict[str, str] = {self.data.id_column: "string"} if self.data.id_column else {}
        types.update(dict.fromkeys(self.data.features.numeric, "float"))
        types.update(dict.fromkeys(self.data.features.categorical, "string"))
        types.update(self.data.dtypes)
        return types

    @property
    def registered_model_name(self) -> str:
        return self.model.registered_name or f"{self.name}_model"

    def fingerprint(self) -> str:
        """A stable hash of the spec's content, logged on every run for lineage."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def training_fingerprint(self) -> str:
        """A stable hash of what changes the model a training run produces (``TRAINING_FIELDS``).

        Tagged on every registered version (``training_fingerprint``); the code-change watcher
        retrains once when the deployed spec's differs from the champion's. Left out: what only
        decides whether or how a model is judged, named, scheduled, served or watched, and how fast
        it runs (docs/spec.md, "What counts as a change of what is trained").
        """
        dumped = self.model_dump(mode="json", include=set(TRAINING_FIELDS))
        for section, names in TRAINING_EXCLUDED.items():
            for name in names:
                part = dumped.get(section)
                *parents, leaf = name.split(".")
                for parent in parents:
                    part = part.get(parent) if isinstance(part, dict) else None
                if isinstance(part, dict):
                    part.pop(leaf, None)
        payload = json.dumps(dumped, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


def _format_errors(path: str, error: ValidationError) -> str:
    lines = [f"invalid pipeline spec {path}:"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (not part of the spec; check the spelling)"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)


def parse_spec(text: str, source: str = "<string>") -> PipelineSpec:
    """Parse YAML text into a validated spec; errors name ``source`` and each bad field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid pipeline spec {source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"invalid pipeline spec {source}: the top level must be a mapping of fields")
    try:
        return PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(source, exc)) from exc


def load_spec(path: str | Path) -> PipelineSpec:
    """Load and validate a spec file (YAML read with ``safe_load``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read pipeline spec {path}: {exc.strerror}") from exc
    return parse_spec(text, source=str(path))
