-- MLflow gets its own database: never share Airflow's (both keep an alembic_version table).
CREATE USER mlflow WITH PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;
