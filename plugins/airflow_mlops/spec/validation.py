"""The ``validation`` section: declared expectations, inferred ones, and the landed-batch checks."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from airflow_mlops.spec.base import Strict


class ExpectationSpec(Strict):
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


class InferenceSpec(Strict):
    """Expectations inferred from a reference profile (by default the champion's training data)."""

    enabled: bool = False
    severity: Literal["error", "warning"] = "warning"
    tolerance: float = Field(default=0.1, ge=0.0, description="Numeric bounds widen by this share of the range.")
    reference_profile: str | None = Field(
        default=None, description="URI of a profile.json to use instead of the champion's."
    )


class LandedBatchSpec(Strict):
    """Checks of each newly landed (claimed) batch on its own, beside the window's suite
    (``core.data.validation.batches``; docs/data.md, "Each landed batch on its own")."""

    min_rows: int | None = Field(
        default=None, ge=0, description="Labeled rows a landed batch needs (default: validation.min_rows)."
    )
    classes: Literal["error", "warning", "off"] = Field(
        default="error",
        description="classification: a landed batch whose labels are all one class is this (an error rejects it); "
        "one lacking only some of the declared classes is a warning.",
    )


class ValidationSpec(Strict):
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    min_rows: int = Field(default=1, ge=0)
    infer: InferenceSpec = Field(default_factory=InferenceSpec)
    batch: LandedBatchSpec = Field(default_factory=LandedBatchSpec)
