"""Casting read columns to the declared types, and the size limit of text fields.

Every problem raises ``IngestError`` naming the column and showing at most five offending
values, each cut short (``core.excerpts``): the values come from the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.data.sources import IngestError
from airflow_mlops.core.excerpts import short


def _bad_examples(original: pd.Series, converted: pd.Series) -> list[Any]:
    bad = original[original.notna() & converted.isna()]
    return [short(value) for value in bad.astype(str).unique()[:5].tolist()]


def cast_declared(frame: pd.DataFrame, types: dict[str, str], uri: str | None = None) -> pd.DataFrame:
    """Cast the declared columns; name the column and show values that do not fit the type."""
    out = frame.copy()
    for column, kind in types.items():
        if column not in out.columns:
            continue
        original = out[column]
        if kind == "int" and pd.api.types.is_integer_dtype(original):
            out[column] = original.astype("Int64")  # already integers: no detour through float64
        elif kind in ("float", "int"):
            converted = pd.to_numeric(original, errors="coerce")
            bad = _bad_examples(original, converted)
            if bad:
                raise IngestError(f"column '{column}' is declared {kind} but has non-numeric values {bad}", uri)
            if kind == "int" and pd.api.types.is_integer_dtype(converted):
                out[column] = converted.astype("Int64")  # text digits parsed exactly
                continue
            values = converted.astype("float64")
            infinite = int(np.isinf(values).sum())
            if infinite:
                raise IngestError(f"column '{column}' has {infinite} infinite value(s) (inf/-inf)", uri)
            if kind == "int":
                fractional = values[values.notna() & (values != np.floor(values))]
                if len(fractional):
                    examples = fractional.unique()[:5].tolist()
                    raise IngestError(f"column '{column}' is declared int but has fractional values {examples}", uri)
                out[column] = values.astype("Int64")
            else:
                out[column] = values
        elif kind == "string":
            out[column] = original.astype("string")
        elif kind == "bool":
            mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
            if pd.api.types.is_numeric_dtype(original):  # 0/1 that JSON or NaN made floats
                original = original.map(lambda v: v if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v))
            lowered = original.astype("string").str.strip().str.lower()
            converted = lowered.map(mapping)
            bad = _bad_examples(original, converted)
            if bad:
                raise IngestError(f"column '{column}' is declared bool but has values {bad}", uri)
            out[column] = converted.astype("boolean")
        elif kind == "datetime":
            if pd.api.types.is_numeric_dtype(original):
                raise IngestError(
                    f"column '{column}' is declared datetime but holds numbers (epoch values?); write ISO-8601 dates",
                    uri,
                )
            converted = pd.to_datetime(original, errors="coerce", utc=True, format="ISO8601")
            bad = _bad_examples(original, converted)
            if bad:
                raise IngestError(f"column '{column}' is declared datetime but has values {bad}", uri)
            out[column] = converted
    return out


def check_field_sizes(frame: pd.DataFrame, limit: int, uri: str) -> None:
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        longest = values.astype("string").str.len().max()
        if pd.notna(longest) and longest > limit:
            raise IngestError(
                f"column '{column}' holds a value of {int(longest):,} characters (limit "
                f"data.source.max_field_chars = {limit:,}): a broken export or an unclosed quote?",
                uri,
            )
