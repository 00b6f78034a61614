"""Hooks: Airflow Connections turned into clients."""
