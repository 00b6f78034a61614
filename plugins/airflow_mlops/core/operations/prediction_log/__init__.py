"""The prediction log: one record per prediction, one schema, its writer (serving), the batch chunk
log (scoring), and its readers (monitoring, delayed labels)."""

from airflow_mlops.core.operations.prediction_log.writer import PredictionLogger

__all__ = ["PredictionLogger"]
