"""Notifiers: alerts Airflow sends when the pipeline needs a person's attention."""
