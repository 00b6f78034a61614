"""The serving app (``airflow-mlops serve``): Airflow-free, like ``core``; never imported at DAG parse time."""
