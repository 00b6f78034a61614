"""Operate operators: batch scoring with the champion, drift checks, monitoring events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.operators.base import (
    MlopsBaseOperator,
    claimed_uris_from_events,
    rendered_dict,
    skip_when_nothing_to_process,
)
from airflow_mlops.operators.threads import capped_threads

if TYPE_CHECKING:
    from airflow.sdk import Context


class BatchScoreOperator(MlopsBaseOperator):
    """Score batches with ``models:/<name>@champion``; log one record per prediction.

    Inputs are, in order: ``input_uris`` if given, the files that a landing-zone
    trigger claimed for this run, or ``dag_run.conf["input_uris"]``.
    Its outlet Asset event carries the prediction log URIs for the monitoring DAG.

    :param input_uris: batches to score. (templated)
    """

    template_fields: Sequence[str] = (*MlopsBaseOperator.template_fields, "input_uris")
    ui_color = "#f0e8fd"
    caps_model_threads = True

    def __init__(self, *, input_uris: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_uris = input_uris

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.operations.stages import score_batches

        uris = list(self.input_uris or []) or claimed_uris_from_events(context)
        if not uris:
            conf = context["dag_run"].conf or {}
            uris = list(conf.get("input_uris", []))
        if not uris:
            raise AirflowSkipException("no batches to score: no claimed files and no conf['input_uris']")
        spec = self.load_spec()
        with capped_threads(self, spec):
            summary = score_batches(spec, self.registry(), uris, self.run_id(context))
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "prediction_log_uris": summary["prediction_log_uris"],
                "rows": summary["rows"],
                "model_version": summary["model_version"],
            }
        self.log.info("scored %s rows with %s v%s", summary["rows"], summary["model_name"], summary["model_version"])
        return summary


class DriftCheckOperator(MlopsBaseOperator):
    """Measure per-feature drift of logged predictions against the champion's training data,
    and the champion's performance on the predictions whose delayed labels arrived.

    Reads the prediction logs named by the triggering Asset events, or the most
    recent ones on a calendar run; logs the scores and labeled metrics to MLflow.
    """

    ui_color = "#fde8e8"

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.operations.stages import monitor_drift

        uris: list[str] = []
        for asset_events in (context.get("triggering_asset_events") or {}).values():
            for event in asset_events:
                uris.extend((event.extra or {}).get("prediction_log_uris", []))
        with skip_when_nothing_to_process():
            result = monitor_drift(self.load_spec(), self.registry(), uris, self.run_id(context))
        self.log.info(
            "drift detected=%s, drifted features %s, PSI %s; performance %s; retrain %s",
            result["drift_detected"],
            result["drifted_features"],
            result["scores"],
            (result.get("performance") or {}).get("decision", "no delayed labels"),
            result.get("retrain_reasons"),
        )
        return result


class EmitDriftEventOperator(MlopsBaseOperator):
    """Emit the drift Asset event when monitoring asks for retraining: the features drifted, or
    the champion's performance on delayed labels decayed. The event's metadata carries the
    drift scores, the performance metrics and the reasons. Otherwise the task skips.

    :param drift: the drift check's result. (templated)
    """

    template_fields: Sequence[str] = (*MlopsBaseOperator.template_fields, "drift")
    ui_color = "#f5d7d7"

    def __init__(self, *, drift: dict[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drift = drift

    def execute(self, context: Context) -> dict[str, Any]:
        drift = rendered_dict(self.drift, "drift")
        # Results from before the performance check carry only drift_detected.
        reasons = list(drift.get("retrain_reasons") or (["drift"] if drift["drift_detected"] else []))
        if not drift.get("retrain", bool(reasons)):
            performance = drift.get("performance")
            decay = f"; performance: {performance['decision']}" if performance else "; no delayed labels"
            raise AirflowSkipException(f"no drift above PSI {drift['psi_threshold']}: {drift['scores']}{decay}")
        extra: dict[str, Any] = {
            key: drift[key]
            for key in (
                "drift_detected",
                "drifted_features",
                "scores",
                "psi_threshold",
                "performance",
                "performance_decay",
                "model_version",
                "report_uri",
                "html_report_uri",
                "mlflow_run_id",
            )
            if key in drift
        }
        extra["retrain_reasons"] = reasons
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.warning(
            "retraining requested (%s): drifted features %s, performance %s",
            ", ".join(reasons),
            drift.get("drifted_features"),
            (drift.get("performance") or {}).get("decision"),
        )
        return extra
