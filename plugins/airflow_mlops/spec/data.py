"""The ``data`` section: the source, the features, the types, enrichment, and the landing inbox."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_mlops.spec.base import NAME_PATTERN, Strict, column_name_problem
from airflow_mlops.spec.expressions import check_arithmetic
from airflow_mlops.spec.sql_query import check_select_query

# The file formats a source or an inbox can hold, and the suffixes that name each: defined once
# here (the spec validates against them at parse time; core.data.sources has one reader per format,
# the landing triggers watch these suffixes).
FileFormat = Literal["parquet", "csv", "jsonl"]
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".pq"),
    "csv": (".csv", ".csv.gz", ".tsv"),
    "jsonl": (".jsonl", ".ndjson", ".json"),
}
DATA_SUFFIXES: tuple[str, ...] = tuple(suffix for suffixes in FORMAT_SUFFIXES.values() for suffix in suffixes)


class FeaturesSpec(Strict):
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


class CsvOptions(Strict):
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


class SqlSourceSpec(Strict):
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


class SourceSpec(Strict):
    """Where training data is read from.

    ``uri`` is one file, a glob (``s3://bucket/exports/*.csv``) or a folder/prefix ending in
    ``/``; it may contain ``{ds}`` (the run's date, YYYY-MM-DD) for dated prefixes; or
    ``generator://<name>?rows=N&seed=S&drift=D`` for a synthetic source. ``sql`` is a query
    through an Airflow connection instead (``core.data.sql_source``). With neither, the pipeline
    reads its own lake: the batches claimed from its landing inbox.
    """

    uri: str | None = None
    format: FileFormat | None = Field(default=None, description="Inferred from each file's suffix when not given.")
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


class EnrichSpec(Strict):
    """A second source joined onto every row by key (a dimension table: one row per key)."""

    uri: str
    on: str
    columns: list[str] = Field(min_length=1, description="Columns taken from the enrichment source.")
    how: Literal["left", "inner"] = "left"
    format: FileFormat | None = None


class LandingSpec(Strict):
    """The producer protocol of the landing inboxes: when a landed file counts as complete.

    Whatever these say, names of writes in progress (``.``/``_``/``~``-prefixed, ``*.tmp``,
    ``*.part``, ``*.crdownload``, ``~``-suffixed, ...) and symbolic links are never claimed
    (``core.landing.protocol``).
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
        if value is not None and value.lower() in (*DATA_SUFFIXES, ".gz"):
            raise ValueError(f"{value!r} is a data file suffix: a marker would be read as data; use e.g. '.done'")
        return value


class DataSpec(Strict):
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
