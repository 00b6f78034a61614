#!/bin/sh
# MLflow gets its own database: never share Airflow's (both keep an alembic_version table).
# Run once by the postgres image on an empty data volume; the password comes from the environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE USER mlflow WITH PASSWORD :'password';
CREATE DATABASE mlflow OWNER mlflow;
SQL
