"""Data validation with Great Expectations 1.x, run in an ephemeral context.

The suite is the spec's expectations plus the checks every pipeline needs (the
required columns exist, the table is not empty). A failed ``error`` expectation
raises ``DataValidationError`` naming each failure with observed vs expected
values; ``warning`` expectations are reported but do not stop the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from airflow_mlops.core.spec import ExpectationSpec, PipelineSpec

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

META_KEY = "airflow_mlops_index"
_RESULT_KEYS = ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list")


class DataValidationError(ValueError):
    """Raised when a batch fails an ``error``-severity expectation."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


@dataclass
class ValidationOutcome:
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_report(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "failures": self.failures,
            "warnings": self.warnings,
        }


def _class_name(expectation_type: str) -> str:
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def required_expectations(spec: PipelineSpec, require_label: bool = True) -> list[ExpectationSpec]:
    """Checks every batch of this pipeline must pass, whatever the spec author declared."""
    columns = [spec.data.id_column, *spec.data.features.all]
    if require_label:
        columns.append(spec.data.label)
    checks = [ExpectationSpec(type="expect_column_to_exist", kwargs={"column": c}) for c in columns]
    checks.append(
        ExpectationSpec(type="expect_table_row_count_to_be_between", kwargs={"min_value": spec.validation.min_rows})
    )
    return checks


def build_expectation(item: ExpectationSpec, index: int = 0) -> Any:
    """The GX expectation for ``item``; ``index`` rides in its meta to pair results back."""
    import great_expectations as gx

    cls = getattr(gx.expectations, _class_name(item.type), None)
    if cls is None:
        raise ValueError(f"unknown Great Expectations expectation '{item.type}'")
    try:
        return cls(**item.kwargs, meta={META_KEY: index})
    except Exception as exc:  # pydantic errors from GX name the bad argument
        raise ValueError(f"invalid arguments for {item.type} {item.kwargs}: {exc}") from exc


def _describe(item: ExpectationSpec, result: dict[str, Any]) -> dict[str, Any]:
    observed = {key: result[key] for key in _RESULT_KEYS if key in result}
    expected = {k: v for k, v in item.kwargs.items() if k != "column"}
    return {
        "expectation": item.type,
        "column": item.kwargs.get("column"),
        "expected": expected,
        "observed": observed,
        "severity": item.severity,
    }


def validate_frame(
    frame: pd.DataFrame,
    items: list[ExpectationSpec],
    suite_name: str,
    result_format: Literal["BOOLEAN_ONLY", "SUMMARY"] = "SUMMARY",
    docs_dir: str | None = None,
) -> ValidationOutcome:
    """Run ``items`` against ``frame`` with Great Expectations and sort out errors from warnings.

    With ``docs_dir`` (a local folder) the run goes through a GX Checkpoint that also renders
    GX Data Docs (HTML) of this validation into that folder.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in task logs
    batch_definition = (
        context.data_sources.add_pandas(f"{suite_name}_source")
        .add_dataframe_asset(f"{suite_name}_asset")
        .add_batch_definition_whole_dataframe("whole_batch")
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for index, item in enumerate(items):
        suite.add_expectation(build_expectation(item, index))
    if docs_dir is None:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format=result_format)
    else:
        result = _validate_with_data_docs(context, batch_definition, suite, frame, result_format, docs_dir)

    # GX does not keep suite order in its results; pair them back by the index in their meta.
    outcome = ValidationOutcome(success=True, evaluated=len(result.results))
    for res in result.results:
        if res.success:
            continue
        config = res.expectation_config
        position = (config.meta or {}).get(META_KEY) if config is not None else None
        if not isinstance(position, int) or not 0 <= position < len(items):
            raise RuntimeError(f"Great Expectations returned a result for an unknown expectation: {config}")
        item = items[position]
        described = _describe(item, dict(res.result or {}))
        if res.exception_info and res.exception_info.get("raised_exception"):
            described["observed"]["exception"] = res.exception_info.get("exception_message")
        if item.severity == "error":
            outcome.failures.append(described)
            outcome.success = False
        else:
            outcome.warnings.append(described)
    return outcome


def _validate_with_data_docs(
    context: Any,
    batch_definition: Any,
    suite: Any,
    frame: pd.DataFrame,
    result_format: Literal["BOOLEAN_ONLY", "SUMMARY"],
    docs_dir: str,
) -> Any:
    import great_expectations as gx

    context.add_data_docs_site(
        site_name="airflow_mlops",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}_validation", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite.name}_checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format=result_format,
        )
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": frame})
    (result,) = outcome.run_results.values()
    return result


def format_failures(failures: list[dict[str, Any]]) -> str:
    lines = []
    for failure in failures:
        column = f" on column '{failure['column']}'" if failure["column"] else ""
        lines.append(
            f"  - {failure['expectation']}{column}: expected {failure['expected']}, observed {failure['observed']}"
        )
    return "\n".join(lines)


def validate_batch(
    frame: pd.DataFrame,
    spec: PipelineSpec,
    require_label: bool = True,
    docs_dir: str | None = None,
    extra: list[ExpectationSpec] | None = None,
    table_checks: bool = True,
) -> ValidationOutcome:
    """Validate a batch against the pipeline's suite; raise if an ``error`` check failed.

    The suite first runs with GX's BOOLEAN_ONLY results (about twice as fast: no unexpected
    value lists are gathered); only when something failed does it run again with SUMMARY
    results, to name observed values in the report and the error message, and (with
    ``docs_dir``) to render GX Data Docs of the failure.
    """
    items = [*required_expectations(spec, require_label), *spec.validation.expectations, *(extra or [])]
    if not require_label:
        items = [i for i in items if i.kwargs.get("column") != spec.data.label]
    if not table_checks:
        items = [i for i in items if not i.type.startswith("expect_table_row_count")]
    outcome = validate_frame(frame, items, suite_name=spec.name, result_format="BOOLEAN_ONLY")
    if outcome.failures or outcome.warnings:
        outcome = validate_frame(frame, items, suite_name=spec.name, result_format="SUMMARY", docs_dir=docs_dir)
    if not outcome.success:
        raise DataValidationError(
            f"data validation failed for pipeline '{spec.name}' "
            f"({len(outcome.failures)} of {outcome.evaluated} expectations):\n" + format_failures(outcome.failures),
            outcome.as_report(),
        )
    return outcome
