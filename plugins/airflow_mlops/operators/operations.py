"""Operate operators: batch scoring with the champion, drift checks, monitoring events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.operators.base import (
    MlopsBaseOperator,
    claimed_uris_from_events,
    skip_when_nothing_to_process,
    upstream_result,
)
from airflow_mlops.operators.lineage import Lineage
from airflow_mlops.operators.links import DriftReportLink, MlflowRunLink
from airflow_mlops.operators.threads import capped_threads

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context, XComArg

    from airflow_mlops.core.contracts import AlertMessage, DriftEvent, HealthResult, MonitorResult, ScoreSummary


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
    lineage_io = Lineage(output="score")  # the scored files and the champion in; prediction logs out

    def __init__(self, *, input_uris: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_uris = input_uris

    def execute(self, context: Context) -> ScoreSummary:
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
        predictions_event: dict[str, Any] = {  # JSON: the predictions Asset event's metadata
            "prediction_log_uris": summary["prediction_log_uris"],
            "rows": summary["rows"],
            "model_version": summary["model_version"],
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = predictions_event
        self.log.info("scored %s rows with %s v%s", summary["rows"], summary["model_name"], summary["model_version"])
        return summary


class DriftCheckOperator(MlopsBaseOperator):
    """Measure per-feature drift of logged predictions against the champion's training data,
    and the champion's performance on the predictions whose delayed labels arrived.

    Reads the prediction logs named by the triggering Asset events, or the most
    recent ones on a calendar run; logs the scores and labeled metrics to MLflow.
    """

    operator_extra_links = (MlflowRunLink(), DriftReportLink())

    ui_color = "#fde8e8"
    lineage_io = Lineage(output="monitor")  # the champion, its reference and the logs in; the reports out

    def execute(self, context: Context) -> MonitorResult:
        from airflow_mlops.core.operations.stages import monitor_drift

        uris: list[str] = []
        for asset_events in (context.get("triggering_asset_events") or {}).values():
            for event in asset_events:
                uris.extend((event.extra or {}).get("prediction_log_uris", []))
        with skip_when_nothing_to_process():
            result = monitor_drift(self.load_spec(), self.registry(), uris, self.run_id(context))
        performance = result.get("performance")
        self.log.info(
            "drift detected=%s, drifted features %s, PSI %s; performance %s; retrain %s",
            result["drift_detected"],
            result["drifted_features"],
            result["scores"],
            performance.get("decision", "no delayed labels") if performance else "no delayed labels",
            result.get("retrain_reasons"),
        )
        return result


# What of the drift check's result the drift Asset event carries (with the retrain reasons).
DRIFT_EVENT_KEYS = (
    "drift_detected",
    "drifted_features",
    "scores",
    "psi_threshold",
    "performance",
    "performance_decay",
    "decayed_slices",
    "estimate",
    "alerts",
    "model_version",
    "report_uri",
    "html_report_uri",
    "mlflow_run_id",
)


class EmitDriftEventOperator(MlopsBaseOperator):
    """Emit the drift Asset event when monitoring asks for retraining: the features drifted, or
    the champion's performance on delayed labels decayed. The event's metadata carries the
    drift scores, the performance metrics and the reasons. Otherwise the task skips.

    :param drift: the drift check's result (its ``.output``). (templated)
    """

    operator_extra_links = (MlflowRunLink(), DriftReportLink())

    template_fields: Sequence[str] = (*MlopsBaseOperator.template_fields, "drift")
    ui_color = "#f5d7d7"
    lineage_io = Lineage(inputs={"drift": "monitor"})  # the report in; the drift Asset (its outlet) out

    def __init__(self, *, drift: MonitorResult | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drift = drift

    def execute(self, context: Context) -> DriftEvent:
        drift: MonitorResult = upstream_result(self.drift, "drift")
        # Results from before the performance check carry only drift_detected.
        reasons = list(drift.get("retrain_reasons") or (["drift"] if drift["drift_detected"] else []))
        if not drift.get("retrain", bool(reasons)):
            performance = drift.get("performance")
            decay = f"; performance: {performance['decision']}" if performance else "; no delayed labels"
            raise AirflowSkipException(f"no drift above PSI {drift['psi_threshold']}: {drift['scores']}{decay}")
        # A result from before the performance check lacks some keys: the event carries those it has.
        found: Mapping[str, Any] = drift
        extra: dict[str, Any] = {key: found[key] for key in DRIFT_EVENT_KEYS if key in found}  # JSON
        extra["retrain_reasons"] = reasons
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        performance = drift.get("performance")
        self.log.warning(
            "retraining requested (%s): drifted features %s, performance %s",
            ", ".join(reasons),
            drift.get("drifted_features"),
            performance.get("decision") if performance else None,
        )
        return cast("DriftEvent", extra)


class HealthCheckOperator(MlopsBaseOperator):
    """Raise an alert when the model falls silent, labels stop arriving, the champion grows old or
    a monitoring run was late (``core.operations.health``); send a recovery when the condition clears.

    One incident per condition: its alert is sent when it starts, nothing while it holds, one
    recovery when it clears. Each message goes to every notifier of ``notifiers`` (Airflow
    notifiers: ``HealthWebhookNotifier``, or any other, called with the context plus
    ``mlops_alert``, the message, so a templated text such as
    ``{{ mlops_alert.kind }}: {{ mlops_alert.incident.summary }}`` renders it).

    Runs on every monitoring run, whatever the drift check did (trigger rule ``all_done``):
    silence is found precisely when a calendar run has nothing to read.

    Safe to retry: the decision (incident opened or closed, message queued) is written to the
    incident state under the artifact root before anything is sent, and each notifier that took
    a message is marked there at once. A retry finds the incident open (no second alert) and
    sends only what some notifier did not take; a notifier failure fails the task so that the
    retry delivers it. Only a notifier that accepted a message just before the process died can
    receive it twice: every message carries its ``id`` for the receiver.

    :param notifiers: Airflow notifiers that receive each alert and recovery.
    :param watched_task_ids: tasks of this run whose failure means monitoring itself is not
        working: while one failed, an open ``monitoring_late`` incident stays open.
    """

    ui_color = "#fdf3e8"
    # It reads the logs' and labels' times and writes only its incident state: no dataset of the pipeline.
    lineage_io = Lineage()

    def __init__(
        self, *, notifiers: Sequence[BaseNotifier] = (), watched_task_ids: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.notifiers = list(notifiers)
        self.watched_task_ids = list(watched_task_ids)

    def execute(self, context: Context) -> HealthResult:
        import copy

        from airflow_mlops.core.model import outcome
        from airflow_mlops.core.operations import incidents
        from airflow_mlops.core.operations.health import check_health

        spec = self.load_spec()
        result, waiting = check_health(spec, self.registry(), self.run_id(context), self._watched_ok(context))
        # A notifier that names its destination (HealthWebhookNotifier: "webhook:<conn id>") shares
        # the deadline callback's record of what that destination took; any other is known by position.
        keys = [getattr(n, "delivery_key", None) or f"{i}:{type(n).__name__}" for i, n in enumerate(self.notifiers)]
        by_key = dict(zip(keys, self.notifiers, strict=True))

        def send(key: str, message: AlertMessage) -> None:
            notifier = copy.deepcopy(by_key[key])  # its templates render in place: a fresh copy per message
            self.log.info("sending %s to %s", message["id"], key)
            notifier({**context, "mlops_alert": message})

        note = outcome.health(result["open"], result["cleared"], self.task_id)
        if note is not None:
            self.record_outcome(context, note)
        result["messages"], result["undelivered"] = incidents.deliver(spec.name, keys, send) if waiting else ([], [])
        for incident in result["open"]:
            self.log.warning("OPEN %s since %s: %s", incident["check"], incident["opened_at"], incident["summary"])
        self.log.info("opened %s, cleared %s, sent %s", result["opened"], result["cleared"], result["messages"])
        return result

    def _watched_ok(self, context: Context) -> bool:
        """None of ``watched_task_ids`` failed in this run (unknown counts as not failed)."""
        if not self.watched_task_ids:
            return True
        ti: Any = context.get("ti")
        try:
            states = ti.get_task_states(dag_id=ti.dag_id, task_ids=self.watched_task_ids, run_ids=[ti.run_id])
        except Exception:  # a context without the supervisor (a unit test): nothing is known to have failed
            self.log.info("could not read the states of %s", self.watched_task_ids, exc_info=True)
            return True
        found = [str(state) for per_run in (states or {}).values() for state in (per_run or {}).values()]
        return not any(state in ("failed", "upstream_failed") for state in found)
