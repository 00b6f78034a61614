"""docker-compose.yml cannot start here (no Docker engine); check it agrees with the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from airflow_mlops.core import settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_production_services_are_all_there(compose):
    assert {
        "postgres",
        "redis",
        "minio",
        "mlflow",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    } <= set(compose["services"])


def test_every_image_is_pinned_and_dependencies_exist(compose):
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image!r} is not pinned"
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
    assert (REPO / "Dockerfile").read_text().startswith("#")
    assert "FROM apache/airflow:3.3.2-python3.11" in (REPO / "Dockerfile").read_text()


def test_airflow_roles_use_celery_postgres_and_redis(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")


def test_env_names_are_the_ones_the_code_reads(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert settings.HOME_ENV in env and settings.PIPELINES_ENV in env
    conn = json.loads(env[f"AIRFLOW_CONN_{settings.DEFAULT_MLFLOW_CONN_ID.upper()}"])
    assert conn["conn_type"] == "mlflow"
    assert conn["host"] == "http://mlflow:5000"
    assert "--port 5000" in compose["services"]["mlflow"]["command"]


def test_mlflow_does_not_share_airflows_database(compose):
    command = compose["services"]["mlflow"]["command"]
    assert "@postgres:5432/mlflow" in command
    init = (REPO / "include" / "compose" / "init-mlflow-db.sql").read_text()
    assert "CREATE DATABASE mlflow" in init


def test_every_airflow_role_reaches_the_same_s3_roots_on_minio(compose):
    buckets = compose["services"]["minio-buckets"]["entrypoint"]
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        env = compose["services"][name]["environment"]
        assert env[settings.LANDING_ENV] == "s3://landing" and env[settings.ARTIFACT_ENV] == "s3://mlops"
        assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
        assert "mlops-data:/opt/airflow/mlops-data" in compose["services"][name]["volumes"]
    for bucket in ("mlflow", "landing", "mlops"):
        assert f"local/{bucket}" in buckets


def test_the_serving_app_reads_the_same_registry_and_log_root_as_airflow(compose):
    from airflow_mlops.cli import build_parser
    from airflow_mlops.serving.app import TOKEN_ENV

    serving = compose["services"]["serving"]
    env = serving["environment"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and TOKEN_ENV in env
    assert env[settings.ARTIFACT_ENV] == compose["services"]["airflow-worker"]["environment"][settings.ARTIFACT_ENV]
    args = build_parser().parse_args(serving["command"].split())  # the command line the CLI accepts
    assert (args.command, args.host, args.port, args.workers) == ("serve", "0.0.0.0", 8000, 2)
    assert args.spec.startswith("/opt/airflow/include/pipelines/") and serving["entrypoint"] == ["airflow-mlops"]
    assert serving["ports"] == ["8000:8000"] and "8000/health/live" in " ".join(serving["healthcheck"]["test"])
