"""Spec -> batch scoring DAG: score landed batches with the champion, log every prediction."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops.factories.assets import pipeline_assets
from airflow_mlops.factories.common import dag_kwargs, load, resolve
from airflow_mlops.operators.operations import BatchScoreOperator


def build_scoring_dag(spec_path: str | Path, mlflow_conn_id: str = "mlflow_default") -> DAG:
    """Scheduled by batches landing in the scoring inbox; emits the ``predictions`` Asset."""
    spec_path = resolve(spec_path)  # the file itself, else by name in $AIRFLOW_MLOPS_PIPELINES_DIR
    spec = load(spec_path)
    assets = pipeline_assets(spec.name, landing_rules=spec.data.landing)
    with DAG(**dag_kwargs(spec, "scoring", spec_path, schedule=assets.landing_scoring)) as dag:
        BatchScoreOperator(
            task_id="score",
            spec_path=str(spec_path),
            mlflow_conn_id=mlflow_conn_id,
            outlets=[assets.predictions],
        )
    return dag
