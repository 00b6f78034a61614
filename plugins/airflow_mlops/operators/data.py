"""Data operators: ingest, validate and split the training data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import (
    MlopsBaseOperator,
    acknowledge_claims,
    fail_without_retry_on_bad_input,
    skip_when_nothing_to_process,
    upstream_result,
)
from airflow_mlops.operators.links import ValidationReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_mlops.core.contracts import DatasetRef, SplitRefs, ValidationResult


class IngestLabeledDataOperator(MlopsBaseOperator):
    """Gather the pipeline's recent labeled batches into one run-scoped dataset.

    Returns ``{"uri", "rows", "fingerprint", "sources", "claimed_sources", "claimed_left_out", ...}``
    (and ``"sql"``: what a SQL source read). A ``data.source.sql`` source is read through its
    Airflow connection (``hooks.sql``).

    A run started by landed files reads every file of the landing claims it takes
    (``acknowledge_claims``: each claim exactly once) plus the newest ``data.window_batches``
    batches landed before them; a claimed file it does not read is listed with the reason in
    ``claimed_left_out`` and logged. Safe to retry: the retry takes the same claims (they are
    this run's) and rewrites the run-scoped dataset.

    Every file is read: each bad one is quarantined (the log and the error say where) and the
    task then fails, naming all of them, without retries (bad data stays bad).
    """

    def execute(self, context: Context) -> DatasetRef:
        from contextlib import nullcontext

        from airflow_mlops.core.data.stages import ingest_labeled
        from airflow_mlops.operators.run_triggers import skip_if_only_malformed

        skip_if_only_malformed(context)  # a run that only malformed retrain messages asked for
        claimed = acknowledge_claims(context, skip_duplicates=True)  # this run's landing claims (exactly once)
        spec = self.load_spec()
        sql = spec.data.source.sql
        if sql is not None:
            from airflow_mlops.hooks.sql import sql_engine

            database: Any = sql_engine(sql.conn_id)
        else:
            database = nullcontext()
        with fail_without_retry_on_bad_input(), skip_when_nothing_to_process(), database as engine:
            result = ingest_labeled(
                spec, self.run_id(context), ds=context.get("ds"), sql_engine=engine, claimed=claimed
            )
        if "sql" in result:
            self.log.info("SQL source read: %s", result["sql"])
        self.log.info(
            "ingested %s labeled rows (%s unlabeled left out, %s duplicate rows dropped) from %d file(s) "
            "(%d left out: older spec) into %s; profile %s",
            result["rows"],
            result["unlabeled_rows"],
            result["duplicates_dropped"],
            len(result["sources"]),
            result["batches_skipped_schema"],
            result["uri"],
            result["profile_uri"],
        )
        if claimed:
            self.log.info(
                "read %d claimed file(s) of this run and %d history batch(es)",
                len(result["claimed_sources"]),
                len(result["sources"]) - len(result["claimed_sources"]),
            )
        if result["claimed_left_out"]:
            self.log.warning("claimed file(s) not trained on: %s", result["claimed_left_out"])
        return result


class ValidateDataOperator(MlopsBaseOperator):
    """Validate a dataset with the pipeline's Great Expectations suite; fail on errors.

    Each batch the run claimed is also judged on its own (rows, label classes, the suite on its
    rows): one that fails, like any batch that fails alone when the window fails, is quarantined
    with its report and the task fails; warnings of the landed batches are logged (``core.data.stages``).

    :param dataset: the ingest task's result (its ``.output``). (templated)
    """

    operator_extra_links = (ValidationReportLink(),)

    template_fields: Sequence[str] = (*MlopsBaseOperator.template_fields, "dataset")
    ui_color = "#fdf3e8"

    def __init__(self, *, dataset: DatasetRef | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def execute(self, context: Context) -> ValidationResult:
        from airflow_mlops.core.data.stages import validate_dataset

        spec = self.load_spec()
        with fail_without_retry_on_bad_input():  # failing expectations quarantine once, never retried
            result = validate_dataset(
                spec, upstream_result(self.dataset, "dataset"), self.run_id(context), self._reference_profile(spec)
            )
        from airflow_mlops.core.data.validation import carried_warnings as validation_warnings

        self.log.info(
            "%s expectations evaluated: no error, %s warning(s); report %s",
            result["evaluated"],
            result["warnings"],
            result["report_uri"],
        )
        for warning in validation_warnings.load(result) if result["warnings"] else []:
            self.log.warning("validation warning (tagged on the model version, named by the gate): %s",
                             validation_warnings.describe(warning))  # fmt: skip
        return result

    def _reference_profile(self, spec: Any) -> dict[str, Any] | None:
        """The profile to infer expectations from: the spec's file, else the champion's training data."""
        from airflow_mlops.core.io import storage

        if not spec.validation.infer.enabled:
            return None
        if spec.validation.infer.reference_profile:
            return dict(storage.read_json(spec.validation.infer.reference_profile))
        return self.registry().champion_profile(spec.registered_model_name)


class SplitDataOperator(MlopsBaseOperator):
    """Split a validated dataset into train, (validation,) and hold-out test Parquet files.

    :param dataset: the ingest task's result (its ``.output``). (templated)
    """

    template_fields: Sequence[str] = (*MlopsBaseOperator.template_fields, "dataset")

    def __init__(self, *, dataset: DatasetRef | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def execute(self, context: Context) -> SplitRefs:
        from airflow_mlops.core.data.stages import split_dataset

        with fail_without_retry_on_bad_input():
            return split_dataset(self.load_spec(), upstream_result(self.dataset, "dataset"), self.run_id(context))
