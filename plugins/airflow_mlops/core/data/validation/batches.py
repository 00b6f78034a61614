"""Each batch judged on its own, beside the window: the landed-batch checks and the culprit search.

The window's suite judges the whole dataset, so a newly landed batch can be bad and still pass
inside a large enough window: one row, one class, a mean far off that the history dilutes.
So each batch the run claimed (``claimed_sources``) is also judged alone:

- **errors** (the batch is quarantined with the reason and the run fails): fewer labeled rows
  than ``validation.batch.min_rows`` (default ``validation.min_rows``); for classification, a
  label holding one class only (``validation.batch.classes: error``, the default); a failed
  ``error`` expectation of the suite on the batch's rows alone (row-count checks excepted:
  they are meant for the window, the row minimum above replaces them);
- **warnings** (reported, nothing set aside): a classification batch lacking some of the
  classes the spec declares (an ``expect_column_values_to_be_in_set`` on the label), and the
  one-class case with ``validation.batch.classes: warning``.

Rows and classes are counted by ingestion before deduplication, so a batch overlapping the
history is judged on what it holds. History batches are judged alone only when the window
fails (to find the culprits, as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.contracts import DatasetRef
from airflow_mlops.core.data.quarantine import quarantine_file
from airflow_mlops.core.data.validation.plan import parquet_source
from airflow_mlops.core.data.validation.suite import DataValidationError, format_failures, validate_batch
from airflow_mlops.core.excerpts import short
from airflow_mlops.spec import ExpectationSpec, PipelineSpec


@dataclass
class BatchVerdicts:
    """What judging the batches alone found: where the rejected ones went, and the warnings."""

    quarantined: dict[str, str] = field(default_factory=dict)  # source uri -> quarantine uri
    reasons: dict[str, list[str]] = field(default_factory=dict)  # source uri -> why it was rejected
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        return "\n".join(
            f"  - {uri} (quarantined at {self.quarantined[uri]}):\n    " + "\n    ".join(self.reasons[uri])
            for uri in self.quarantined
        )


def declared_classes(spec: PipelineSpec) -> list[str]:
    """The label classes the spec names: the value sets of ``expect_column_values_to_be_in_set`` on the label."""
    found: list[str] = []
    for item in spec.validation.expectations:
        if item.type == "expect_column_values_to_be_in_set" and item.kwargs.get("column") == spec.data.label:
            found.extend(str(value) for value in item.kwargs.get("value_set") or [])
    return list(dict.fromkeys(found))


def judge_counts(
    spec: PipelineSpec, labeled: int | None, classes: dict[str, int] | None
) -> tuple[list[str], list[str]]:
    """(errors, warnings) of one landed batch from its labeled row count and label class counts."""
    errors: list[str] = []
    warnings: list[str] = []
    checks = spec.validation.batch
    minimum = checks.min_rows if checks.min_rows is not None else spec.validation.min_rows
    if labeled is not None and labeled < minimum:
        source = "validation.batch.min_rows" if checks.min_rows is not None else "validation.min_rows"
        errors.append(f"{labeled} labeled row(s), fewer than the {minimum} a landed batch needs ({source})")
    if spec.model.task != "classification" or checks.classes == "off" or not classes or labeled is None:
        return errors, warnings
    present = [value for value, count in classes.items() if count > 0]
    label = spec.data.label
    if len(present) == 1:
        message = (
            f"only one class of the label '{label}' ({short(present[0])} in {labeled} labeled row(s)): "
            "a broken export (a defaulted or overwritten label)? (validation.batch.classes)"
        )
        (errors if checks.classes == "error" else warnings).append(message)
        return errors, warnings
    missing = [value for value in declared_classes(spec) if value not in present]
    if missing:
        warnings.append(f"lacks label class(es) {[short(value) for value in missing]}")
    return errors, warnings


def _suite_alone(
    spec: PipelineSpec, dataset_uri: str, start: int, rows: int, inferred: list[ExpectationSpec], alone: bool
) -> dict[str, Any] | None:
    """The suite on rows ``start:start+rows`` of the dataset; its report if an error check failed."""
    # One batch among several is judged on its rows, not on minimums meant for the whole dataset.
    per_file = [i for i in inferred if alone or not i.type.startswith("expect_table_row_count")]
    try:
        with parquet_source(dataset_uri, start, start + rows) as part:
            validate_batch(part, spec, extra=per_file, table_checks=alone)
    except DataValidationError as exc:
        return exc.report
    return None


def judge_batches(
    spec: PipelineSpec, dataset: DatasetRef, run_id: str, inferred: list[ExpectationSpec], window_failed: bool
) -> BatchVerdicts:
    """Judge the run's landed batches alone (and, when the window failed, every batch); quarantine
    each that fails with its report."""
    verdicts = BatchVerdicts()
    claimed = set(dataset.get("claimed_sources", []))
    labeled = dataset.get("labeled_by_source", {})
    classes = dataset.get("classes_by_source", {})
    sources: dict[str, int] = dataset.get("rows_by_source", {})
    alone = len(sources) == 1  # the file is the dataset: table-level checks apply to it too
    start = 0
    for uri, rows in sources.items():
        errors, warnings = judge_counts(spec, labeled.get(uri), classes.get(uri)) if uri in claimed else ([], [])
        report: dict[str, Any] = {}
        # Every row a duplicate of an earlier batch's: nothing of it can fail. Alone and the window
        # passed: the window's suite was this batch's.
        if rows and (window_failed or (uri in claimed and not alone)):
            report = _suite_alone(spec, dataset["uri"], start, rows, inferred, alone) or {}
        start += rows
        if warnings:
            verdicts.warnings[uri] = warnings
        if not errors and not report:
            continue
        reasons = [*errors, *([format_failures(report["failures"]).strip()] if report.get("failures") else [])]
        full = {"stage": "validate", "batch_checks": errors, "batch_warnings": warnings, **report}
        verdicts.quarantined[uri] = quarantine_file(spec.name, uri, run_id, full)
        verdicts.reasons[uri] = reasons
    return verdicts
