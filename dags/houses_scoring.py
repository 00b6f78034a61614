"""The houses use case's scoring DAG, built from include/pipelines/houses.yaml."""

from pathlib import Path

from airflow_mlops.factories import build_scoring_dag

dag = build_scoring_dag(Path(__file__).parents[1] / "include" / "pipelines" / "houses.yaml")
