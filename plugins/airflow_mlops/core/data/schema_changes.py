"""Reading batches landed under an older spec: renamed columns, and features added since.

``data.renamed`` ({old_name: new_name}) renames a batch's columns as it is read, so a batch
landed before a rename trains like a new one. A batch that lacks a feature (or the id) the
spec added since cannot be trained on: ``core.data.ingest`` leaves it out of the window with a
warning instead of quarantining it, as long as it comes before the first batch that has
every column (see ``ingest.ingest``). A model trained before a rename is handed its inputs
under the names it learned (``under_learned_names``), so the gate can still compare it, and
scoring and monitoring can still use it, until a new champion is promoted.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from airflow_mlops.spec import PipelineSpec


def required_columns(spec: PipelineSpec) -> list[str]:
    """The columns every batch must carry: the id (if the spec has one), the label (unless
    ``labeling`` makes it), the features."""
    return [
        *([spec.data.id_column] if spec.data.id_column else []),
        *([spec.data.label] if spec.labeling is None else []),
        *spec.data.features.all,
    ]


def apply_renames(frame: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """``data.renamed``: a column under its old name gets its new one (unless the new one is there too)."""
    renames = {old: new for old, new in spec.data.renamed.items() if old in frame.columns and new not in frame.columns}
    return frame.rename(columns=renames) if renames else frame


def schema_gap(frame: pd.DataFrame, spec: PipelineSpec) -> list[str]:
    """Features or id an older batch can lack because the spec added them since; a batch
    without its label is bad data, not an older schema (nothing is returned for it)."""
    if spec.labeling is None and spec.data.label not in frame.columns:
        return []
    return [c for c in required_columns(spec) if c not in frame.columns]


class OlderSchemaError(Exception):
    """A batch from before the spec added columns: left out of the window, not quarantined."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(missing)
        self.missing = missing


class RenamedInputs:
    """A model trained before ``data.renamed``: it gets its inputs under the names it learned."""

    def __init__(self, model: Any, old_names: dict[str, str]) -> None:
        self._model, self._old_names = model, old_names
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_

    def predict(self, features: Any) -> Any:
        return self._model.predict(features.rename(columns=self._old_names))

    def __getattr__(self, name: str) -> Any:
        if name == "predict_proba":  # only for models that have it (``evaluate`` asks with hasattr)
            inner = self._model.predict_proba
            return lambda features: inner(features.rename(columns=self._old_names))
        raise AttributeError(name)


def under_learned_names(model: Any, spec: PipelineSpec) -> Any:
    """``model`` itself, or wrapped to see renamed columns under the old names it was trained on."""
    learned = set(getattr(model, "feature_names_in_", ()))
    old_names = {new: old for old, new in spec.data.renamed.items() if old in learned and new not in learned}
    return RenamedInputs(model, old_names) if old_names else model
