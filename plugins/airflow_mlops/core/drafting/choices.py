"""What ``init`` decides from a file's profile: the id column, each column's role, the task, bounds, candidates."""

from __future__ import annotations

import math
import re
from typing import Any

from airflow_mlops.core.drafting.file_profile import (
    DraftError,
    TableScan,
    looks_like_id,
)
from airflow_mlops.core.model.estimators import spec_name
from airflow_mlops.spec import RESERVED_COLUMNS

MIN_ROWS = 50


MAX_CLASSES = 100


CLASSIFICATION_MAX_VALUES = 20  # a numeric label with at most this many distinct integers is a class


TEXT_MAX_DISTINCT = 1000


TEXT_MAX_SHARE = 0.5


MARGIN = 0.25  # numeric bounds widen by this share of the observed range on each side


_INDEX_NAME = re.compile(r"^(unnamed: ?\d+|index|level_0|)$", re.IGNORECASE)


def nice_number(value: float, outward: int) -> float | int:
    """``value`` rounded to 3 significant digits, away from the data (``outward`` -1 down, +1 up)."""
    if value == 0 or not math.isfinite(value):
        return 0
    step = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.floor if outward < 0 else math.ceil)(value / step) * step
    rounded = float(f"{rounded:.12g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 2**53 else rounded


def numeric_bounds(profile: dict[str, Any], integral: bool) -> tuple[float | int, float | int]:
    low, high = float(profile["min"]), float(profile["max"])
    margin = MARGIN * (high - low) or MARGIN * max(abs(low), 1.0)
    lower = low - margin
    if low >= 0 > lower:
        lower = 0.0  # non-negative data (counts, amounts): a negative value is an error
    if integral:  # whole numbers get whole bounds
        return math.floor(nice_number(lower, -1)), math.ceil(nice_number(high + margin, +1))
    return nice_number(lower, -1), nice_number(high + margin, +1)


def null_expectation(column: str, profile: dict[str, Any], whole: bool) -> dict[str, Any] | None:
    """Never missing in the file: an error past 1% missing. Else a warning at twice the share seen (+5% at least)."""
    share = float(profile.get("null_fraction", 0.0))
    if share == 0 and whole:
        return {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column, "mostly": 0.99}}
    mostly = math.floor((1 - min(1.0, max(2 * share, share + 0.05))) * 100) / 100
    if mostly <= 0:
        return None
    kwargs = {"column": column, "mostly": mostly}
    return {"type": "expect_column_values_to_not_be_null", "kwargs": kwargs, "severity": "warning"}


def choose_id_column(table: TableScan, label: str) -> str | None:
    candidates = [c for c in table.columns.values() if c.name != label and c.unique and looks_like_id(c.name)
                  and c.name not in RESERVED_COLUMNS]  # fmt: skip
    candidates.sort(key=lambda c: (c.name.strip().lower() != "id", list(table.columns).index(c.name)))
    return candidates[0].name if candidates else None


def feature_role(table: TableScan, name: str) -> tuple[str | None, str]:
    """(numeric / categorical / None, why it is left out)."""
    column = table.columns[name]
    profile, kind = column.profile, column.kind
    distinct = int(profile.get("distinct", 0))
    if kind == "empty" or column.present == 0:
        return None, "entirely empty"
    if kind == "infinite":
        return None, "holds infinite values (inf); ingestion refuses them"
    if distinct <= 1:
        return None, "constant (one value)"
    if name in RESERVED_COLUMNS:
        return None, "its name is reserved for the prediction log; rename the column to use it"
    if kind == "datetime":
        return None, "a date/time; not a feature (it could drive split.method: time)"
    share = distinct / max(column.present, 1)
    if kind == "int" and _INDEX_NAME.match(name.strip()) and share > 0.99:
        return None, "looks like a saved row index"
    if looks_like_id(name) and kind in ("int", "string"):
        if share > TEXT_MAX_SHARE:
            return None, f"looks like an identifier ({distinct:,} distinct values)"
        if kind == "int":
            return "categorical", ""  # a code (store_id): its numbers have no order
    if kind in ("int", "float"):
        return "numeric", ""
    if kind == "string" and (distinct > TEXT_MAX_DISTINCT or (share > TEXT_MAX_SHARE and column.present >= MIN_ROWS)):
        return None, f"free text or high cardinality ({distinct:,} distinct values in {column.present:,})"
    return "categorical", ""


def infer_task(table: TableScan, label: str, asked: str | None) -> tuple[str, list[Any]]:
    """The task and, for classification, the classes (sorted)."""
    column = table.columns[label]
    counts = table.label_counts
    numeric = column.kind in ("int", "float")
    if column.kind in ("datetime", "infinite"):
        what = "dates" if column.kind == "datetime" else "infinite values"
        raise DraftError(f"{table.uri}: label '{label}' holds {what}; pick a class or number column to predict")
    if asked == "regression" and not numeric:
        raise DraftError(f"{table.uri}: label '{label}' is {column.kind}, not numeric; regression needs numbers "
                         "(use --task classification)")  # fmt: skip
    if asked is None:
        few = counts is not None and len(counts) <= CLASSIFICATION_MAX_VALUES and not table.label_fractional
        asked = "classification" if not numeric or few else "regression"
    if asked == "regression":
        if column.profile.get("distinct", 0) <= 1:
            raise DraftError(f"{table.uri}: label '{label}' has a single value; nothing to learn")
        return asked, []
    if counts is None or len(counts) > MAX_CLASSES:
        raise DraftError(f"{table.uri}: label '{label}' has more than {MAX_CLASSES} distinct values: too many "
                         "classes (use --task regression for a numeric target)")  # fmt: skip
    if len(counts) < 2:
        value = next(iter(counts), None)
        raise DraftError(f"{table.uri}: label '{label}' has a single class ({value!r}); a classifier needs at least "
                         "two: add rows of the other classes")  # fmt: skip
    return asked, sorted(counts, key=lambda v: (str(type(v)), v))


def label_type(table: TableScan, label: str, task: str) -> str:
    if task == "regression":
        return "float"
    return {"int": "int", "float": "int", "bool": "bool"}.get(table.columns[label].kind, "string")  # whole numbers


def plain_value(value: Any) -> Any:
    """A numpy / pandas scalar as a plain YAML-safe Python value."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def classification_gate(classes: list[Any], counts: dict[Any, int]) -> tuple[str, float, str]:
    total = sum(counts.values())
    smallest = min(counts.values())
    if len(classes) == 2 or (len(classes) <= 10 and smallest >= 100):
        return "roc_auc", 0.55, "roc_auc >= 0.55 is a low bar (0.5 is a coin flip); raise it once you know the data"
    majority = max(counts.values()) / total
    bar = round(majority + 0.05 * (1 - majority), 3)
    why = (f"{len(classes)} classes, the smallest with {smallest} rows: roc_auc would be undefined on splits that "
           f"miss a class, so accuracy must beat always predicting the largest class ({majority:.3f})")  # fmt: skip
    return "accuracy", bar, why


def candidate_models(task: str, rows: int) -> list[dict[str, Any]]:
    """Boosted trees (two learning rates), a linear model, and a forest when the data is small: 3-4 trials.

    Families by name, their spec names per task from the registry (``core.model.estimators``)."""
    linear = {"estimator": "logistic_regression", "params": {"max_iter": 1000}} if task == "classification" else {
        "estimator": "ridge", "params": {"alpha": 1.0}}  # fmt: skip
    out: list[dict[str, Any]] = [
        {"estimator": spec_name("hist_gradient_boosting", task), "params": {"max_iter": 200},
         "search": {"method": "grid", "space": {"learning_rate": [0.05, 0.1]}}},
        linear,
    ]  # fmt: skip
    if rows <= 100_000:
        out.append(
            {"estimator": spec_name("random_forest", task), "params": {"n_estimators": 200, "min_samples_leaf": 2}}
        )
    return out
