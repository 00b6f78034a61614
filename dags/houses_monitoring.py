"""The houses use case's monitoring DAG, built from include/pipelines/houses.yaml."""

from pathlib import Path

from airflow_mlops.factories import build_monitoring_dag

dag = build_monitoring_dag(Path(__file__).parents[1] / "include" / "pipelines" / "houses.yaml")
