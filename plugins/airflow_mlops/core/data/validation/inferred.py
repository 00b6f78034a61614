"""Expectations inferred from a reference profile: bounds, categories, null rates, row count.

They catch a batch that does not look like the data the current model learned from, with
no hand-written suite. Numeric bounds are the reference min/max widened by ``tolerance``
of the range; categorical columns must stay within the reference categories; each
column's null share may grow by at most max(0.05, twice the reference share); the table
must have at least a tenth of the reference rows. Types are enforced at ingestion.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.spec import ExpectationSpec, PipelineSpec


def infer_expectations(profile: dict[str, Any], spec: PipelineSpec) -> list[ExpectationSpec]:
    rule = spec.validation.infer
    columns = profile.get("columns", {})
    inferred: list[ExpectationSpec] = []

    def add(kind: str, **kwargs: Any) -> None:
        inferred.append(ExpectationSpec(type=kind, kwargs=kwargs, severity=rule.severity))

    for name in spec.data.features.all:
        stats = columns.get(name)
        if not stats:
            continue
        if stats["kind"] == "numeric" and "min" in stats:
            margin = rule.tolerance * max(stats["max"] - stats["min"], abs(stats["max"]) * 1e-6, 1e-12)
            add("expect_column_values_to_be_between", column=name, min_value=stats["min"] - margin,
                max_value=stats["max"] + margin)  # fmt: skip
        elif stats["kind"] == "categorical" and stats.get("categories"):
            add("expect_column_values_to_be_in_set", column=name, value_set=list(stats["categories"]))
        allowed_nulls = min(1.0, stats["null_fraction"] + max(0.05, 2 * stats["null_fraction"]))
        if allowed_nulls < 1.0:
            add("expect_column_values_to_not_be_null", column=name, mostly=round(1.0 - allowed_nulls, 6))
    if profile.get("rows"):
        add("expect_table_row_count_to_be_between", min_value=max(1, profile["rows"] // 10))
    return inferred
