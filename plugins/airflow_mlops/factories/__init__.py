"""DAG factories: a pipeline spec becomes training, scoring and monitoring DAGs."""

from airflow_mlops.factories.monitoring import build_monitoring_dag
from airflow_mlops.factories.scoring import build_scoring_dag
from airflow_mlops.factories.training import build_training_dag

__all__ = ["build_monitoring_dag", "build_scoring_dag", "build_training_dag"]
