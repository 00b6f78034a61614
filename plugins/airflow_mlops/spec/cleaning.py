"""The ``cleaning`` section: imputation, clipping, category normalisation, deduplication."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from airflow_mlops.spec.base import Strict

ImputeStrategy = Literal["median", "mean", "most_frequent", "constant"]


class ImputeSpec(Strict):
    strategy: ImputeStrategy
    fill_value: float | str | None = Field(default=None, description="For 'constant'.")

    @model_validator(mode="after")
    def _constant_needs_value(self) -> ImputeSpec:
        if self.strategy == "constant" and self.fill_value is None:
            raise ValueError("impute strategy 'constant' needs fill_value")
        return self


class ClipSpec(Strict):
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


class NormalizeSpec(Strict):
    """Text clean-up of categorical columns, applied identically at training and scoring time."""

    columns: list[str]
    strip: bool = True
    lowercase: bool = False
    mapping: dict[str, str] = Field(default_factory=dict, description="Replace values after strip/lowercase.")


class DeduplicateSpec(Strict):
    """Rows read twice in one training window (a re-landed file, overlapping exports) are dropped.

    On by default. A duplicate is a row equal to one already read in the run on ``subset``:
    by default the id (when there is one), the features and the label, i.e. an exact copy of a
    row the model uses. The first (oldest) row is kept.
    """

    enabled: bool = Field(default=True, description="false keeps every row, duplicates included.")
    subset: list[str] | None = Field(
        default=None, description="Columns that identify a duplicate (default: the id, the features and the label)."
    )


class CleaningSpec(Strict):
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
