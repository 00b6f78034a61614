"""The pipeline spec: one YAML file describes one ML use case.

The spec is validated up front (pydantic, unknown fields forbidden) so a typo in a
YAML key is an error naming the file and the field, not a silently ignored setting.
This module stays light (pydantic + yaml only) because DAG factories load specs at
parse time.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_mlops.core.sql_query import check_select_query

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,62}$")

# Metrics the evaluation computes, by task, and which of them improve downwards.
TASK_METRICS = {
    "classification": {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"},
    "regression": {"rmse", "mae", "r2"},
}
LOWER_IS_BETTER = {"rmse", "mae", "log_loss"}
# Columns of the prediction log; a feature or id with one of these names would be overwritten.
RESERVED_COLUMNS = {
    "request_id", "client_request_id", "row", "logged_at", "model_name", "model_version", "source_uri",
    "prediction", "score", "probabilities",
}  # fmt: skip
MAX_COLUMN_NAME_CHARS = 250


def column_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a column of a pipeline, or None.

    Any text works end to end (spaces, ``/``, dots, dashes, unicode, leading digits; the
    ONNX graph maps such names to input names of its own) except what no reader, log or
    registry can keep apart: an empty name, surrounding whitespace (CSV headers and YAML
    disagree on it), control characters, or a name longer than 250 characters.
    """
    if not name:
        return "is empty"
    if name != name.strip():
        return "starts or ends with whitespace (rename the column, or strip the header)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "holds a control character (newline, tab, ...)"
    if len(name) > MAX_COLUMN_NAME_CHARS:
        return f"is longer than {MAX_COLUMN_NAME_CHARS} characters"
    return None


class SpecError(ValueError):
    """A spec file that cannot be used, with the file and the offending field named."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleSpec(_Strict):
    """When the training DAG runs: the calendar, data arrival, and monitoring events."""

    cron: str | None = Field(default=None, description="Calendar retraining, a cron expression.")
    on_data_arrival: bool = True
    on_drift: bool = True
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter  # light; shipped with Airflow

        if not croniter.is_valid(value):
            raise ValueError(f"'{value}' is not a valid cron expression")
        return value


_ARITHMETIC = {ast.Add, ast.Sub, ast.Mult, ast.Div}


_QUOTED_NAME = re.compile(r"`([^`]+)`")


def check_arithmetic(expression: str, names: set[str]) -> ast.Expression:
    """Parse a derived-feature expression, allowing only numbers, ``names``, + - * / and parentheses.

    A column whose name is no identifier is written in backticks: `` `mean radius` / 2 ``.

    Raises ValueError naming what is not allowed. The parsed tree is evaluated by
    ``training.feature_frame`` on columns directly, never through ``eval``.
    """
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        quoted[f"__quoted_{len(quoted)}__"] = match.group(1)
        return f"__quoted_{len(quoted) - 1}__"

    try:
        tree = ast.parse(_QUOTED_NAME.sub(placeholder, expression), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{expression!r} is not an arithmetic expression: {exc.msg}") from None
    for node in ast.walk(tree):  # `mean radius` stood for a column: the tree names the column itself
        if isinstance(node, ast.Name) and node.id in quoted:
            node.id = quoted[node.id]
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expression | ast.Load):
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            continue
        if isinstance(node, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.USub | ast.UAdd):
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Name):
            used.add(node.id)
            continue
        raise ValueError(
            f"only numbers, numeric feature names, + - * / and parentheses are allowed, "
            f"not {type(node).__name__} in {expression!r}"
        )
    unknown = sorted(used - names)
    if unknown:
        raise ValueError(f"uses {unknown}, which are not numeric features")
    if not used:
        raise ValueError(f"{expression!r} uses no feature (a constant is no feature)")
    return tree


class FeaturesSpec(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="New numeric features from arithmetic over numeric features, e.g. "
        "charges_per_month_of_tenure: 'monthly_charges / (tenure_months + 1)'. Computed wherever the model "
        "gets its inputs (training, evaluation, scoring, ONNX feeds), so they cannot skew.",
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> FeaturesSpec:
        for kind, names in (("numeric", self.numeric), ("categorical", self.categorical)):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{kind} lists {twice} more than once")
            for name in names:
                problem = column_name_problem(name)
                if problem:
                    raise ValueError(f"{kind} feature {name!r} {problem}")
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
        if not self.numeric and not self.categorical:
            raise ValueError("at least one numeric or categorical feature is required")
        for name, expression in self.derived.items():
            if name in self.all:
                raise ValueError(f"derived feature '{name}' has the name of an input feature")
            if not NAME_PATTERN.match(name):
                raise ValueError(f"derived feature name '{name}' must be lowercase letters, digits and underscores")
            try:
                check_arithmetic(expression, set(self.numeric))
            except ValueError as exc:
                raise ValueError(f"derived feature '{name}': {exc}") from None
        return self

    @property
    def all(self) -> list[str]:
        """The input columns (what the data must hold)."""
        return [*self.numeric, *self.categorical]

    @property
    def model_numeric(self) -> list[str]:
        """Numeric model inputs: the numeric features, then the derived ones."""
        return [*self.numeric, *self.derived]

    @property
    def model_inputs(self) -> list[str]:
        """Every column the model's Pipeline takes, in order."""
        return [*self.model_numeric, *self.categorical]


DeclaredType = Literal["float", "int", "string", "bool", "datetime"]


class CsvOptions(_Strict):
    """How CSV files are parsed."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str = Field(default='"', min_length=1, max_length=1)
    encoding: str = "utf-8"
    header: bool = True
    skip_rows: int = Field(default=0, ge=0)
    null_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "null", "NULL", "NaN", "nan"])

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding '{value}'") from None
        return value


class SqlSourceSpec(_Strict):
    """A query through an Airflow connection of a SQL database (any common.sql hook; PostgreSQL tested)."""

    conn_id: str = Field(min_length=1, description="Airflow connection of the database, e.g. of type postgres.")
    query: str = Field(
        description="One SELECT (or WITH ... SELECT) statement. Give it an ORDER BY over a unique key: the "
        "dataset's fingerprint (and so the skip of an unchanged retraining) depends on the rows' order."
    )
    watermark_column: str | None = Field(
        default=None,
        min_length=1,
        description="Incremental loads: each run reads only rows whose value in this column is greater than "
        "the largest read before, and lands them as a batch of the pipeline's lake (data.window_batches applies).",
    )

    @field_validator("query")
    @classmethod
    def _one_select(cls, value: str) -> str:
        return check_select_query(value)


class SourceSpec(_Strict):
    """Where training data is read from.

    ``uri`` is one file, a glob (``s3://bucket/exports/*.csv``) or a folder/prefix ending in
    ``/``; it may contain ``{ds}`` (the run's date, YYYY-MM-DD) for dated prefixes; or
    ``generator://<name>?rows=N&seed=S&drift=D`` for a synthetic source. ``sql`` is a query
    through an Airflow connection instead (``core.sql_source``). With neither, the pipeline
    reads its own lake: the batches claimed from its landing inbox.
    """

    uri: str | None = None
    format: Literal["parquet", "csv", "jsonl"] | None = Field(
        default=None, description="Inferred from each file's suffix when not given."
    )
    csv: CsvOptions = Field(default_factory=CsvOptions)
    chunk_rows: int = Field(default=250_000, ge=1_000, description="Rows per chunk: bounds memory while reading.")
    extra_columns: Literal["ignore", "error"] = "ignore"
    max_field_chars: int = Field(default=1_000_000, ge=1, description="Longer text values mean a broken export.")
    conn_id: str | None = Field(default=None, description="Airflow connection with credentials for s3:// URIs.")
    sql: SqlSourceSpec | None = Field(default=None, description="A SQL query instead of files (not with uri).")

    @model_validator(mode="after")
    def _files_or_sql(self) -> SourceSpec:
        if self.sql is None:
            return self
        if self.uri is not None:
            raise ValueError("give uri (files) or sql (a query), not both")
        given = {"format": self.format, "conn_id": self.conn_id, "csv": self.csv != CsvOptions() or None}
        file_only = sorted(name for name, value in given.items() if value is not None)
        if file_only:
            raise ValueError(f"{file_only} apply to files only; a SQL source's connection is data.source.sql.conn_id")
        return self


class EnrichSpec(_Strict):
    """A second source joined onto every row by key (a dimension table: one row per key)."""

    uri: str
    on: str
    columns: list[str] = Field(min_length=1, description="Columns taken from the enrichment source.")
    how: Literal["left", "inner"] = "left"
    format: Literal["parquet", "csv", "jsonl"] | None = None


_DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".gz", ".tsv", ".jsonl", ".ndjson", ".json")  # triggers.landing's


class LandingSpec(_Strict):
    """The producer protocol of the landing inboxes: when a landed file counts as complete.

    Whatever these say, names of writes in progress (``.``/``_``/``~``-prefixed, ``*.tmp``,
    ``*.part``, ``*.crdownload``, ``~``-suffixed, ...) and symbolic links are never claimed
    (``core.landing_protocol``).
    """

    settle_seconds: float = Field(
        default=5.0,
        ge=0.0,
        le=86_400.0,
        description="A file is claimed only once two looks at the inbox at least this many seconds apart saw "
        "the same size and modification time (0: the first look claims it).",
    )
    require_marker: str | None = Field(
        default=None,
        description="A marker suffix such as '.done': a data file <name> is claimed only once <name>.done exists "
        "beside it, written no earlier than the file; the marker is removed when the file is claimed.",
    )

    @field_validator("require_marker")
    @classmethod
    def _marker_suffix(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\.[A-Za-z0-9_-]{1,32}", value):
            raise ValueError(f"{value!r} is not a marker suffix: give a dot and a word, e.g. '.done' or '.ready'")
        if value is not None and value.lower() in _DATA_SUFFIXES:
            raise ValueError(f"{value!r} is a data file suffix: a marker would be read as data; use e.g. '.done'")
        return value


class DataSpec(_Strict):
    """Where batches land and what their columns mean."""

    source: SourceSpec = Field(default_factory=SourceSpec)
    enrich: list[EnrichSpec] = Field(default_factory=list)
    dtypes: dict[str, DeclaredType] = Field(
        default_factory=dict,
        description="Declared column types; features default to float (numeric) and string (categorical).",
    )
    id_column: str | None = Field(
        default=None,
        description="Unique row (entity) key. Optional: without it the hash split and deduplication key on a "
        "fingerprint of each row's feature and label values, and delayed labels join by request_id.",
    )
    label: str
    features: FeaturesSpec
    renamed: dict[str, str] = Field(
        default_factory=dict,
        description="{old_name: new_name}: a column renamed since older batches were landed. A batch that has "
        "the old column and not the new one is read with the column renamed.",
    )
    window_batches: int = Field(
        default=4,
        ge=1,
        description="History window of the lake: a run reads every file of the landing claims it took, plus "
        "this many newest older lake batches (landed before its newest claimed file); a run without claims "
        "reads this many newest batches. Order: landing time, then the batch date in the name, then the name.",
    )
    generator: str | None = Field(default=None, description="Name of a synthetic generator for this data.")
    landing: LandingSpec = Field(default_factory=LandingSpec)


class ExpectationSpec(_Strict):
    """One Great Expectations expectation: its snake_case type and keyword arguments."""

    type: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["error", "warning"] = "error"

    @field_validator("type")
    @classmethod
    def _is_expectation_name(cls, value: str) -> str:
        if not re.fullmatch(r"expect_[a-z0-9_]+", value):
            raise ValueError(f"'{value}' is not an expectation name (expected expect_...)")
        return value


class InferenceSpec(_Strict):
    """Expectations inferred from a reference profile (by default the champion's training data)."""

    enabled: bool = False
    severity: Literal["error", "warning"] = "warning"
    tolerance: float = Field(default=0.1, ge=0.0, description="Numeric bounds widen by this share of the range.")
    reference_profile: str | None = Field(
        default=None, description="URI of a profile.json to use instead of the champion's."
    )


ImputeStrategy = Literal["median", "mean", "most_frequent", "constant"]


class ImputeSpec(_Strict):
    strategy: ImputeStrategy
    fill_value: float | str | None = Field(default=None, description="For 'constant'.")

    @model_validator(mode="after")
    def _constant_needs_value(self) -> ImputeSpec:
        if self.strategy == "constant" and self.fill_value is None:
            raise ValueError("impute strategy 'constant' needs fill_value")
        return self


class ClipSpec(_Strict):
    """Bounds for a numeric column: fixed values, or quantiles of the training data's profile."""

    min: float | None = None
    max: float | None = None
    lower_quantile: Literal["p01", "p05", "p25"] | None = None
    upper_quantile: Literal["p75", "p95", "p99"] | None = None

    @model_validator(mode="after")
    def _one_kind_per_side(self) -> ClipSpec:
        if self.min is not None and self.lower_quantile is not None:
            raise ValueError("give min or lower_quantile, not both")
        if self.max is not None and self.upper_quantile is not None:
            raise ValueError("give max or upper_quantile, not both")
        if all(v is None for v in (self.min, self.max, self.lower_quantile, self.upper_quantile)):
            raise ValueError("clip needs at least one bound")
        return self


class NormalizeSpec(_Strict):
    """Text clean-up of categorical columns, applied identically at training and scoring time."""

    columns: list[str]
    strip: bool = True
    lowercase: bool = False
    mapping: dict[str, str] = Field(default_factory=dict, description="Replace values after strip/lowercase.")


class DeduplicateSpec(_Strict):
    """Rows read twice in one training window (a re-landed file, overlapping exports) are dropped.

    On by default. A duplicate is a row equal to one already read in the run on ``subset``:
    by default the id (when there is one), the features and the label, i.e. an exact copy of a
    row the model uses. The first (oldest) row is kept.
    """

    enabled: bool = Field(default=True, description="false keeps every row, duplicates included.")
    subset: list[str] | None = Field(
        default=None, description="Columns that identify a duplicate (default: the id, the features and the label)."
    )


class CleaningSpec(_Strict):
    """Declarative cleaning. Deduplication, normalisation and clipping shape the training data;
    imputation is fitted into the model's Pipeline so prediction imputes the same way."""

    deduplicate: DeduplicateSpec = Field(default_factory=DeduplicateSpec)
    normalize: list[NormalizeSpec] = Field(default_factory=list)
    clip: dict[str, ClipSpec] = Field(default_factory=dict)
    impute: dict[str, ImputeSpec] = Field(default_factory=dict)

    @field_validator("deduplicate", mode="before")
    @classmethod
    def _deduplicate_is_a_mapping(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("deduplication is on by default; write {enabled: false} to keep duplicate rows")
        return value


class LabelJoinSpec(_Strict):
    """Labels from a separate source joined by key (labels that arrive later)."""

    uri: str = Field(description="File, glob or folder of the label source.")
    on: str = Field(description="Key column present in both the data and the label source.")
    column: str = Field(description="Label column in the label source.")
    format: Literal["parquet", "csv", "jsonl"] | None = None


class LabelingSpec(_Strict):
    """How rows get their label: exactly one of a rule, a join, or a function."""

    rule: str | None = Field(default=None, description="A pandas expression over columns; true -> 1, false -> 0.")
    join: LabelJoinSpec | None = None
    function: str | None = Field(
        default=None, description="Dotted path 'package.module:function' taking a DataFrame, returning labels."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> LabelingSpec:
        given = [name for name in ("rule", "join", "function") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"labeling needs exactly one of rule, join, function; got {given or 'none'}")
        if self.function is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.function):
            raise ValueError(f"labeling.function '{self.function}' must look like 'package.module:function'")
        return self


class LandedBatchSpec(_Strict):
    """Checks of each newly landed (claimed) batch on its own, beside the window's suite
    (``core.batch_validation``; docs/data.md, "Each landed batch on its own")."""

    min_rows: int | None = Field(
        default=None, ge=0, description="Labeled rows a landed batch needs (default: validation.min_rows)."
    )
    classes: Literal["error", "warning", "off"] = Field(
        default="error",
        description="classification: a landed batch whose labels are all one class is this (an error rejects it); "
        "one lacking only some of the declared classes is a warning.",
    )


class ValidationSpec(_Strict):
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    min_rows: int = Field(default=1, ge=0)
    infer: InferenceSpec = Field(default_factory=InferenceSpec)
    batch: LandedBatchSpec = Field(default_factory=LandedBatchSpec)


SplitName = Literal["train", "validation", "test"]


def _default_ratios() -> dict[SplitName, float]:
    return {"train": 0.75, "test": 0.25}


class SplitSpec(_Strict):
    """Train / validation / test split.

    - ``hash`` (default): each row goes by a salted hash of ``key`` (default: the id column;
      without an id, the row's fingerprint: its feature and label values, see
      ``core.row_fingerprint``). A key keeps its split across reruns and as data grows, so a
      champion is never tested on rows it trained on; rows sharing a key (a customer, a group,
      or identical rows) stay together.
    - ``random``: seeded shuffle; ``stratified``: seeded, keeping label shares in each split.
    - ``time``: the oldest rows train, the newest test (by ``time_column``).
    """

    method: Literal["hash", "random", "stratified", "time"] = "hash"
    ratios: dict[SplitName, float] = Field(default_factory=lambda: _default_ratios())
    seed: int = Field(default=42, description="Salt of the hash, or seed of random/stratified splits.")
    key: str | None = Field(
        default=None,
        description="hash: the column hashed (default data.id_column; without an id, a fingerprint of each "
        "row's feature and label values).",
    )
    time_column: str | None = None

    @model_validator(mode="after")
    def _ratios_add_up(self) -> SplitSpec:
        if any(value < 0 for value in self.ratios.values()):
            raise ValueError(f"split ratios must not be negative: {self.ratios}")
        if self.ratios.get("train", 0) <= 0 or self.ratios.get("test", 0) <= 0:
            raise ValueError(f"split ratios need train > 0 and test > 0: {self.ratios}")
        total = sum(self.ratios.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must add up to 1, they add up to {total:g}: {self.ratios}")
        if self.method == "time" and not self.time_column:
            raise ValueError("split.method 'time' needs split.time_column")
        return self


SearchValue = list[Any] | dict[str, list[float]]


class SearchSpec(_Strict):
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


class CandidateSpec(_Strict):
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


class PreprocessingSpec(_Strict):
    """Feature engineering fitted into the model's Pipeline (so serving applies it too)."""

    scale: Literal["auto", "standard", "minmax", "none"] = Field(
        default="auto",
        description="auto: standard scaling for linear and distance-based models, none for trees "
        "(they ignore scale, and unscaled thresholds convert to ONNX exactly).",
    )
    encoding: Literal["onehot", "ordinal"] = "onehot"


class ModelSpec(_Strict):
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


class PromotionSpec(_Strict):
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

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER


class EvaluationSpec(_Strict):
    """What the evaluation of a candidate on the hold-out test split reports besides its metrics."""

    slices: list[str] = Field(
        default_factory=list, description="Categorical features to report metrics per value of (e.g. region)."
    )
    plots: bool = Field(default=True, description="Log confusion matrix, ROC/PR curves or residuals, importances.")


class PackagingSpec(_Strict):
    """How the model is packaged beside its MLflow (skops) form."""

    onnx: Literal["required", "optional", "off"] = Field(
        default="required",
        description="required: no ONNX export or a parity gap above 1e-4 fails the gate; "
        "optional: export when possible, never block; off: no export.",
    )


class DeploymentSpec(_Strict):
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


class MonitoringSpec(_Strict):
    """Drift monitoring: a feature drifts when its test is significant (p < alpha / features)
    and the shift is large (PSI > psi_threshold, or KS D / Cramér's V > effect_threshold)."""

    cron: str | None = "@daily"
    psi_threshold: float = Field(default=0.2, gt=0.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0, description="Significance level, before Bonferroni.")
    effect_threshold: float = Field(default=0.1, gt=0.0, le=1.0, description="KS D or Cramér's V that matters.")
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

    @model_validator(mode="after")
    def _one_lookback(self) -> MonitoringSpec:
        if self.lookback_batches is not None and "lookback_hours" in self.model_fields_set:
            raise ValueError("give lookback_hours (a time window) or lookback_batches (newest files), not both")
        return self


class ScoringSpec(_Strict):
    """Batch scoring with the champion."""

    chunk_rows: int = Field(
        default=100_000,
        ge=1,
        description="Rows read, scored and logged at a time: bounds scoring memory whatever the file's size.",
    )


class RetriesSpec(_Strict):
    """Retries of the data steps (ingest, validate, split) and of each trial after a fault of the
    infrastructure (a lost worker, a database or store outage). Bad data and a bad spec fail at
    once, never retried. Each of these tasks writes only run-scoped files (rewritten whole) or a
    trial run of its own, so a retry redoes its work without duplicating it."""

    count: int = Field(default=1, ge=0, le=10, description="Retries per task (0: none).")
    delay_seconds: float = Field(default=10.0, ge=0.0, le=3600.0, description="Wait before a retry.")


class PipelineSpec(_Strict):
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
        reserved = RESERVED_COLUMNS & {*id_columns, *self.data.features.all, *self.data.features.derived}
        if reserved:
            raise ValueError(f"column names reserved for the prediction log: {sorted(reserved)}; rename them")
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
        }
        kinds = {"cleaning.clip": "numeric ", "evaluation.slices": "categorical "}
        problems = [
            f"{where} names {names}, not {kinds.get(where, '')}features" for where, names in unknown.items() if names
        ]
        for column, rule in self.cleaning.impute.items():
            if column in features.categorical and rule.strategy in ("median", "mean"):
                problems.append(f"cleaning.impute.{column}: '{rule.strategy}' needs a numeric column")
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
