"""Data validation with Great Expectations 1.x, run in an ephemeral context.

The suite is the spec's expectations plus the checks every pipeline needs (the
required columns exist, the table is not empty). A failed ``error`` expectation
raises ``DataValidationError`` naming each failure with observed vs expected
values; ``warning`` expectations are reported but do not stop the run.

The suite runs column by column (see ``core.data.validation.plan``): each GX batch holds only
the columns its expectations read, loaded from the Parquet file when it is needed. That
keeps memory at one column's size, whatever the table's, and spares GX from filtering
every column of a wide frame for each expectation (its pandas engine drops null rows of
the whole batch before each column check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from airflow_mlops.core.data.validation.plan import TableSource, frame_source, plan_batches, referenced_columns
from airflow_mlops.core.excerpts import bounded
from airflow_mlops.spec import ExpectationSpec, PipelineSpec

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

META_KEY = "airflow_mlops_index"
ResultFormat = Literal["BOOLEAN_ONLY", "SUMMARY"]
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
    flagged: set[int] = field(default_factory=set)  # suite positions that failed (errors and warnings)

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
    columns = [*([spec.data.id_column] if spec.data.id_column else []), *spec.data.features.all]
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
    # Observed values come from the data: each string is cut to a short escaped excerpt.
    observed = bounded({key: result[key] for key in _RESULT_KEYS if key in result})
    expected = {k: v for k, v in item.kwargs.items() if k != "column"}
    return {
        "expectation": item.type,
        "column": item.kwargs.get("column"),
        "expected": expected,
        "observed": observed,
        "severity": item.severity,
    }


def _skip_gx_frame_fingerprint() -> None:
    """Stop GX from md5-hashing every batch frame (a batch marker we never read).

    GX's pandas engine fingerprints each in-memory frame under 1 GB with
    ``hash_pandas_object``: about 1.4 s per million rows of the benchmark table, 40% of
    the validation time. Our datasets carry their own content fingerprint. GX skips the
    hash for frames above ``HASH_THRESHOLD`` bytes; a threshold of 0 skips it for all.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


class _GxSession:
    """One ephemeral GX context with a dataframe asset that each planned batch goes through."""

    def __init__(self, suite_name: str, docs_dir: str | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _skip_gx_frame_fingerprint()
        self.name = suite_name
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in task logs
        self.datasource = self.context.data_sources.add_pandas(f"{suite_name}_source")
        self.batch_definition = self.datasource.add_dataframe_asset(
            f"{suite_name}_asset"
        ).add_batch_definition_whole_dataframe("whole_batch")
        self.docs_dir = docs_dir
        if docs_dir is not None:
            self.context.add_data_docs_site(
                site_name="airflow_mlops",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )

    def run(self, label: str, expectations: list[Any], frame: pd.DataFrame, result_format: ResultFormat) -> list[Any]:
        """Validate ``frame`` against ``expectations``; with a docs folder, keep the result for ``render_docs``."""
        import great_expectations as gx

        suite = gx.ExpectationSuite(name=f"{self.name}.{label}")
        for expectation in expectations:
            suite.add_expectation(expectation)
        try:
            if self.docs_dir is None:
                batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
                return list(batch.validate(suite, result_format=result_format).results)
            return self._run_for_docs(suite, frame, result_format)
        finally:
            self._forget_batches()

    def _forget_batches(self) -> None:
        """Drop what GX's engine keeps of past batches: each frame, and each metric it computed.

        The metric cache holds full-length Series (the rows each check flagged), keyed by
        batch, so without this a suite run column by column would end up holding the table.
        ``tests/unit/core/data/validation/test_suite.py`` checks that nothing table-sized survives a run.
        """
        engine = self.datasource.get_execution_engine()
        engine.batch_manager.batch_data_cache.clear()
        metric_cache = getattr(engine, "_metric_cache", None)  # no public way to clear it in GX 1.x
        if isinstance(metric_cache, dict):
            metric_cache.clear()

    def _run_for_docs(self, suite: Any, frame: pd.DataFrame, result_format: ResultFormat) -> list[Any]:
        import great_expectations as gx

        suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite.name}.validation", data=self.batch_definition, suite=suite)
        )
        # A definition's run keeps its result in the context's store; ``render_docs`` renders them all at once.
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
        return list(result.results)

    def render_docs(self) -> None:
        if self.docs_dir is not None:
            self.context.build_data_docs(site_names=["airflow_mlops"])


def validate_source(
    source: TableSource,
    items: list[ExpectationSpec],
    suite_name: str,
    result_format: ResultFormat = "SUMMARY",
    docs_dir: str | None = None,
    only: set[int] | None = None,
) -> ValidationOutcome:
    """Run ``items`` against ``source`` with Great Expectations, batch by batch, and sort errors from warnings.

    With ``docs_dir`` (a local folder) GX Data Docs (HTML) of every batch's results are
    rendered into that folder, one page per batch. ``only`` limits the run to these suite
    positions (e.g. the ones that failed a first, cheaper pass).
    """
    expectations = [build_expectation(item, index) for index, item in enumerate(items)]  # bad specs fail first
    session = _GxSession(suite_name, docs_dir)
    outcome = ValidationOutcome(success=True, evaluated=0)
    found: list[tuple[int, dict[str, Any]]] = []
    for number, batch in enumerate(plan_batches(items, source.columns)):
        positions = [p for p in batch.items if only is None or p in only]
        if not positions:
            continue
        frame = source.frame_for(batch)
        results = session.run(batch.label(number), [expectations[p] for p in positions], frame, result_format)
        del frame
        outcome.evaluated += len(results)
        for res in results:
            if not res.success:
                found.append(_paired(res, items, set(source.columns)))
    session.render_docs()
    # Report in suite order (GX does not keep it), whatever batch a failure came from.
    for position, described in sorted(found, key=lambda pair: pair[0]):
        outcome.flagged.add(position)
        if items[position].severity == "error":
            outcome.failures.append(described)
            outcome.success = False
        else:
            outcome.warnings.append(described)
    return outcome


def _paired(res: Any, items: list[ExpectationSpec], present: set[str]) -> tuple[int, dict[str, Any]]:
    """The suite position of a GX result (from the index in its meta) and its description."""
    config = res.expectation_config
    position = (config.meta or {}).get(META_KEY) if config is not None else None
    if not isinstance(position, int) or not 0 <= position < len(items):
        raise RuntimeError(f"Great Expectations returned a result for an unknown expectation: {config}")
    described = _describe(items[position], dict(res.result or {}))
    if res.exception_info and res.exception_info.get("raised_exception"):
        described["observed"]["exception"] = res.exception_info.get("exception_message")
    absent = [c for c in referenced_columns(items[position], sorted(present)) if c not in present]
    if absent and items[position].type != "expect_column_to_exist":
        described["observed"]["error"] = f"column(s) {absent} not in the data"
    return position, described


def validate_frame(
    frame: pd.DataFrame,
    items: list[ExpectationSpec],
    suite_name: str,
    result_format: ResultFormat = "SUMMARY",
    docs_dir: str | None = None,
) -> ValidationOutcome:
    """``validate_source`` on a DataFrame in memory."""
    return validate_source(frame_source(frame), items, suite_name, result_format, docs_dir)


def format_failures(failures: list[dict[str, Any]]) -> str:
    lines = []
    for failure in failures:
        column = f" on column '{failure['column']}'" if failure["column"] else ""
        lines.append(
            f"  - {failure['expectation']}{column}: expected {failure['expected']}, observed {failure['observed']}"
        )
    return "\n".join(lines)


def validate_batch(
    data: pd.DataFrame | TableSource,
    spec: PipelineSpec,
    require_label: bool = True,
    docs_dir: str | None = None,
    extra: list[ExpectationSpec] | None = None,
    table_checks: bool = True,
) -> ValidationOutcome:
    """Validate a batch (a DataFrame, or a ``TableSource`` read column by column) against the
    pipeline's suite; raise if an ``error`` check failed.

    The suite first runs with GX's BOOLEAN_ONLY results (about twice as fast: no unexpected
    value lists are gathered); only when something failed does it run again with SUMMARY
    results, to name observed values in the report and the error message. With
    ``docs_dir`` that second pass covers the whole suite and renders GX Data Docs of it;
    without, it covers only the expectations that failed.
    """
    items = [*required_expectations(spec, require_label), *spec.validation.expectations, *(extra or [])]
    if not require_label:
        items = [i for i in items if i.kwargs.get("column") != spec.data.label]
    if not table_checks:
        items = [i for i in items if not i.type.startswith("expect_table_row_count")]
    source = data if isinstance(data, TableSource) else frame_source(data)
    outcome = validate_source(source, items, suite_name=spec.name, result_format="BOOLEAN_ONLY")
    if outcome.flagged:
        only = None if docs_dir is not None else outcome.flagged
        evaluated = outcome.evaluated
        outcome = validate_source(source, items, spec.name, "SUMMARY", docs_dir=docs_dir, only=only)
        outcome.evaluated = evaluated
    if not outcome.success:
        raise DataValidationError(
            f"data validation failed for pipeline '{spec.name}' "
            f"({len(outcome.failures)} of {outcome.evaluated} expectations):\n" + format_failures(outcome.failures),
            outcome.as_report(),
        )
    return outcome
