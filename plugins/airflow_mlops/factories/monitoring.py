"""Spec -> monitoring DAG: drift of logged predictions vs training data, performance on delayed
labels; emit the drift event (retraining) when either calls for it; the health checks (silence,
label lag, champion age, a late monitoring run) with their alerts and recoveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseNotifier

from airflow_mlops.factories.assets import pipeline_assets
from airflow_mlops.factories.common import dag_kwargs, load, resolve, schedule_for
from airflow_mlops.operators.operations import DriftCheckOperator, EmitDriftEventOperator, HealthCheckOperator
from airflow_mlops.spec import PipelineSpec

HEALTH_CHECK_FIELDS = ("max_silence_hours", "max_label_lag_hours", "max_champion_age_days", "max_run_minutes")


def monitoring_deadline(spec: PipelineSpec) -> Any:
    """The DAG's Deadline Alert (``monitoring.max_run_minutes``): a run not succeeded that long after
    it was queued opens the ``monitoring_late`` incident (``notifiers.health``); None when off."""
    minutes = spec.monitoring.max_run_minutes
    if minutes is None:
        return None
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    from airflow_mlops.notifiers.health import MonitoringDeadlineNotifier

    kwargs = {"pipeline": spec.name, "max_run_minutes": minutes, "conn_id": spec.monitoring.alert_conn_id}
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(MonitoringDeadlineNotifier, kwargs=kwargs),
        name=f"{spec.name}_monitoring_late",
    )


def build_monitoring_dag(
    spec_path: str | Path,
    mlflow_conn_id: str = "mlflow_default",
    health_notifiers: Sequence[BaseNotifier] = (),
) -> DAG:
    """Runs when predictions are logged and on the monitoring cron; may schedule retraining.

    :param health_notifiers: Airflow notifiers that receive each health alert and recovery, besides
        the webhook of ``monitoring.alert_conn_id`` (the message is ``mlops_alert`` in their context).
    """
    spec_path = resolve(spec_path)  # the file itself, else by name in $AIRFLOW_MLOPS_PIPELINES_DIR
    spec = load(spec_path)
    assets = pipeline_assets(spec.name, landing_rules=spec.data.landing)
    common = {"spec_path": str(spec_path), "mlflow_conn_id": mlflow_conn_id}
    schedule = schedule_for(spec.monitoring.cron, spec.schedule.timezone, [assets.predictions])
    deadline = monitoring_deadline(spec)
    extra = {"deadline": deadline} if deadline is not None else {}
    with DAG(max_active_runs=1, **dag_kwargs(spec, "monitoring", spec_path, schedule=schedule), **extra) as dag:
        check = DriftCheckOperator(task_id="drift_check", **common)
        alerts = []
        if spec.monitoring.alert_conn_id:
            from airflow_mlops.notifiers.webhook import DriftWebhookNotifier

            alerts.append(DriftWebhookNotifier(conn_id=spec.monitoring.alert_conn_id))
        emit = EmitDriftEventOperator(
            task_id="emit_drift_event",
            drift=check.output,
            outlets=[assets.drift],
            on_success_callback=alerts or None,  # it succeeds only when drift or performance decay was found
            **common,
        )
        check >> emit
        if any(getattr(spec.monitoring, field) is not None for field in HEALTH_CHECK_FIELDS):
            notifiers: list[BaseNotifier] = list(health_notifiers)
            if spec.monitoring.alert_conn_id:
                from airflow_mlops.notifiers.webhook import HealthWebhookNotifier

                notifiers.insert(0, HealthWebhookNotifier(conn_id=spec.monitoring.alert_conn_id))
            health = HealthCheckOperator(
                task_id="health_check",
                notifiers=notifiers,
                watched_task_ids=["drift_check"],
                trigger_rule="all_done",  # silence shows precisely when the drift check has nothing to read
                retries=2,  # a webhook that blinked: the retry sends what it did not take
                retry_delay=timedelta(seconds=30),
                **common,
            )
            check >> health
    return dag
