"""Labeling: give rows their label from a rule, a join with a label source, or a function.

Runs on each ingested chunk before unlabeled rows are counted and left out, so labels
that have not arrived yet (no match in the label source) simply keep a row out of
training. The rule and the function are written by the spec's author, like an estimator's
dotted path: they are trusted code, not user input.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.spec import PipelineSpec


class LabelingError(ValueError):
    """The labeling configuration cannot produce labels for this data."""


def _load_function(path: str) -> Callable[[pd.DataFrame], Any]:
    module_name, _, name = path.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise LabelingError(f"cannot import labeling.function '{path}': {exc}") from None
    if not callable(function):
        raise LabelingError(f"labeling.function '{path}' is not callable")
    return function  # type: ignore[no-any-return]


def _load_label_table(spec: PipelineSpec) -> pd.Series:
    from airflow_mlops.core.data.sources import read_keyed_table

    join = spec.labeling.join if spec.labeling else None
    assert join is not None
    table = read_keyed_table(join.uri, join.format, join.on, [join.column], "label source", rows_noun="labels")
    return table.set_index(join.on)[join.column]


class Labeler:
    """Applies the spec's labeling to chunks; a no-op when the spec has none."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.rule = spec.labeling
        self._labels = _load_label_table(spec) if self.rule and self.rule.join else None
        self._function = _load_function(self.rule.function) if self.rule and self.rule.function else None

    @property
    def active(self) -> bool:
        return self.rule is not None

    def apply(self, chunk: pd.DataFrame) -> pd.DataFrame:
        if self.rule is None:
            return chunk
        label = self.spec.data.label
        out = chunk.copy()
        if self.rule.rule is not None:
            try:
                values = out.eval(self.rule.rule)
            except Exception as exc:
                raise LabelingError(f"labeling.rule '{self.rule.rule}' cannot be evaluated: {exc}") from None
            if not pd.api.types.is_bool_dtype(values):
                raise LabelingError(f"labeling.rule '{self.rule.rule}' must give true/false, got {values.dtype}")
            labels = values.astype("Int64")
            # A rule over a missing value says nothing: the row stays unlabeled, not 0.
            used = [c for c in out.columns if re.search(rf"(?<![\w.]){re.escape(str(c))}(?!\w)", self.rule.rule)]
            if used:
                labels[out[used].isna().any(axis=1).to_numpy()] = pd.NA
            out[label] = labels
        elif self._labels is not None:
            join = self.rule.join
            assert join is not None
            if join.on not in out.columns:
                raise LabelingError(f"labeling.join.on column '{join.on}' is not in the data")
            out[label] = out[join.on].astype("string").map(self._labels).to_numpy()
        else:
            assert self._function is not None
            values = self._function(out)
            if len(values) != len(out):
                raise LabelingError(
                    f"labeling.function '{self.rule.function}' returned {len(values)} labels for {len(out)} rows"
                )
            out[label] = np.asarray(values)
        return out
