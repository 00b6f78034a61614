"""Spec -> monitoring DAG: drift of logged predictions vs training data, performance on delayed
labels; emit the drift event (retraining) when either calls for it."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops.factories.assets import pipeline_assets
from airflow_mlops.factories.common import dag_kwargs, load, resolve, schedule_for
from airflow_mlops.operators.operations import DriftCheckOperator, EmitDriftEventOperator


def build_monitoring_dag(spec_path: str | Path, mlflow_conn_id: str = "mlflow_default") -> DAG:
    """Runs when predictions are logged and on the monitoring cron; may schedule retraining."""
    spec_path = resolve(spec_path)  # the file itself, else by name in $AIRFLOW_MLOPS_PIPELINES_DIR
    spec = load(spec_path)
    assets = pipeline_assets(spec.name, landing_rules=spec.data.landing)
    common = {"spec_path": str(spec_path), "mlflow_conn_id": mlflow_conn_id}
    schedule = schedule_for(spec.monitoring.cron, spec.schedule.timezone, [assets.predictions])
    with DAG(max_active_runs=1, **dag_kwargs(spec, "monitoring", spec_path, schedule=schedule)) as dag:
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
    return dag
