"""The ``labeling`` section: a rule, a join with a label source, or a function."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from airflow_mlops.spec.base import Strict


class LabelJoinSpec(Strict):
    """Labels from a separate source joined by key (labels that arrive later)."""

    uri: str = Field(description="File, glob or folder of the label source.")
    on: str = Field(description="Key column present in both the data and the label source.")
    column: str = Field(description="Label column in the label source.")
    format: Literal["parquet", "csv", "jsonl"] | None = None


class LabelingSpec(Strict):
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
