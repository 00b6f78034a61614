"""The houses use case's training DAG, built from include/pipelines/houses.yaml."""

from pathlib import Path

from airflow_mlops.factories import build_training_dag

dag = build_training_dag(Path(__file__).parents[1] / "include" / "pipelines" / "houses.yaml")
