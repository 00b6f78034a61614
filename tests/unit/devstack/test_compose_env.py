"""docker-compose.yml cannot start here (no Docker engine); check it agrees with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from airflow_mlops import layout as settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


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
    init = (REPO / "include" / "compose" / "init-mlflow-db.sh").read_text()
    assert "CREATE DATABASE mlflow" in init and "$MLFLOW_DB_PASSWORD" in init  # no password in the file
    postgres = compose["services"]["postgres"]
    assert "./include/compose/init-mlflow-db.sh:/docker-entrypoint-initdb.d/init-mlflow-db.sh:ro" in postgres["volumes"]
    assert postgres["environment"]["MLFLOW_DB_PASSWORD"].startswith("${MLFLOW_DB_PASSWORD:?")


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
    from airflow_mlops.serving.config import TOKEN_ENV

    serving = compose["services"]["serving"]
    env = serving["environment"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and TOKEN_ENV in env
    assert env[settings.ARTIFACT_ENV] == compose["services"]["airflow-worker"]["environment"][settings.ARTIFACT_ENV]
    args = build_parser().parse_args(serving["command"].split())  # the command line the CLI accepts
    assert (args.command, args.host, args.port, args.workers) == ("serve", "0.0.0.0", 8000, 2)
    assert args.spec.startswith("/opt/airflow/include/pipelines/") and serving["entrypoint"] == ["airflow-mlops"]
    assert serving["ports"] == ["8000:8000"] and "8000/health/live" in " ".join(serving["healthcheck"]["test"])


AIRFLOW_ROLES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
SHARED_SECRETS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET")


def test_every_role_gets_the_same_required_fernet_and_api_keys_from_the_environment(compose):
    for secret in SHARED_SECRETS:
        values = {compose["services"][role]["environment"][secret] for role in (*AIRFLOW_ROLES, "airflow-init")}
        assert len(values) == 1, f"{secret} differs between roles: {values}"
        (value,) = values
        # ${VAR:?message}: compose refuses to start without it; never a literal key in the file.
        assert value.startswith(f"${{{secret}:?") and value.endswith("}"), value


def _sqlalchemy_urls() -> list[str]:
    """The database URLs as compose hands them over (interpolated with the secrets set)."""
    from airflow_mlops.devstack import compose_env
    from airflow_mlops.devstack.production_env import generated_secrets

    services = compose_env.load(generated_secrets(compose_env.required_variables()))
    env = services["airflow-worker"].environment
    urls = [env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], env["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+")]
    command = services["mlflow"].command
    urls.append(command[command.index("--backend-store-uri") + 1])
    return urls


def test_every_sqlalchemy_url_names_a_driver_the_production_extra_installs(compose):
    import tomllib

    from sqlalchemy.engine import make_url

    production = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["production"]
    installed = {requirement.split("<")[0].split(">")[0].split("=")[0].strip() for requirement in production}
    drivers = {"psycopg2": "psycopg2-binary", "asyncpg": "asyncpg"}
    for url in _sqlalchemy_urls():
        parsed = make_url(url)
        # A bare postgresql:// is psycopg 3 under SQLAlchemy 2.1, which the image does not install.
        assert parsed.drivername in {f"postgresql+{d}" for d in drivers}, url
        assert drivers[parsed.get_driver_name()] in installed, url
    assert "-e '/opt/airflow-mlops[production]'" in (REPO / "Dockerfile").read_text()
    installs = re.search(r"-e '\.\[([a-z,]+)\]'", (REPO / "Makefile").read_text())
    assert installs is not None and "production" in installs.group(1).split(","), "make install has the extra"


def test_task_logs_go_to_s3_and_a_lost_workers_tasks_are_redelivered(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"].startswith("s3://mlops/")
    conn = json.loads(env[f"AIRFLOW_CONN_{env['AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID'].upper()}"])
    assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"] == env["AWS_ENDPOINT_URL_S3"]
    assert "aws_secret_access_key" not in json.dumps(conn).lower()  # keys come from the environment's chain
    timeout = int(env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"])
    assert 3600 <= timeout <= 86400


def test_the_pinned_celery_is_one_the_celery_provider_works_with():
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line)
    assert pins["celery"].startswith("5.6.") and pins["apache-airflow-providers-celery"] == "3.26.0"
    assert {"kombu", "redis", "psycopg2-binary", "asyncpg"} <= set(pins)


def test_long_running_services_restart_and_one_shot_ones_do_not(compose):
    for name, service in compose["services"].items():
        if name in ("airflow-init", "minio-buckets"):
            assert "restart" not in service, name
        else:
            assert service.get("restart") == "unless-stopped", name


# -- issue 12: no default secret, nothing unauthenticated published, the serving app's least privilege --
NON_SECRET_DEFAULTS = {"MINIO_ROOT_USER", "MINIO_SERVING_USER", "AIRFLOW_WORKER_CONCURRENCY"}
# Published on every interface only where the service itself requires a login or a token.
AUTHENTICATED_PORTS = {"airflow-apiserver": {"8080"}, "serving": {"8000"}}


def test_every_variable_with_a_default_is_a_non_secret_one_and_all_others_are_required():
    from airflow_mlops.devstack import compose_env

    referenced = compose_env.referenced_variables()
    required = set(compose_env.required_variables())
    assert referenced - required == NON_SECRET_DEFAULTS
    text = (REPO / "docker-compose.yml").read_text()
    for name in NON_SECRET_DEFAULTS:  # a default, never a required-or-default mix
        assert name not in required and f"${{{name}:-" in text, name
    assert {"MINIO_SERVING_PASSWORD", "AIRFLOW_MLOPS_SERVE_TOKEN", "MINIO_ROOT_PASSWORD"} <= required


def _published(port: object) -> tuple[str, str]:
    """(host address, published port) of a compose port entry, short or long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip") or "0.0.0.0"), str(port.get("published", port.get("target")))
    parts = str(port).rsplit(":", 2)
    if len(parts) == 3:
        return parts[0].strip("[]"), parts[1]
    return "0.0.0.0", parts[0]


def test_no_port_without_authentication_is_published_on_every_interface(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host, published = _published(port)
            if published in AUTHENTICATED_PORTS.get(name, set()):
                continue
            assert host in ("127.0.0.1", "::1"), f"{name} publishes {port!r} on {host}"
    published = {name: [_published(p) for p in compose["services"][name]["ports"]] for name in ("mlflow", "minio")}
    assert published == {
        "mlflow": [("127.0.0.1", "5000")],
        "minio": [("127.0.0.1", "9000"), ("127.0.0.1", "9001")],
    }
    assert _published("8080:8080") == ("0.0.0.0", "8080") and _published("[::1]:1:2") == ("::1", "1")


def _loaded() -> tuple[dict, dict[str, str]]:
    from airflow_mlops.devstack import compose_env
    from airflow_mlops.devstack.production_env import generated_secrets

    values = generated_secrets(compose_env.required_variables())
    return compose_env.load(values), values


def test_the_serving_app_gets_no_airflow_secret_database_url_or_broker(compose):
    from airflow_mlops.serving.config import TOKEN_ENV

    raw = compose["services"]["serving"]
    assert "<<" not in raw and raw["image"] == compose["x-airflow-common"]["image"]
    env = raw["environment"]
    assert not [key for key in env if key.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))], env
    for value in env.values():
        assert not any(word in str(value) for word in ("postgres", "redis://", "MINIO_ROOT", "FERNET", "JWT"))
    services, values = _loaded()
    serving = services["serving"].environment
    theirs = {"MINIO_SERVING_PASSWORD", "AIRFLOW_MLOPS_SERVE_TOKEN"}
    for name, secret in values.items():  # every other secret's value, wherever it would hide
        if name not in theirs:
            assert all(secret not in value for value in serving.values()), name
    assert serving[TOKEN_ENV] == values["AIRFLOW_MLOPS_SERVE_TOKEN"]
    # Its own MinIO user, not the root key pair every Airflow role has.
    worker = services["airflow-worker"].environment
    assert serving["AWS_SECRET_ACCESS_KEY"] == values["MINIO_SERVING_PASSWORD"] != worker["AWS_SECRET_ACCESS_KEY"]
    assert serving["AWS_ACCESS_KEY_ID"] == "airflow-mlops-serving" != worker["AWS_ACCESS_KEY_ID"]
    # ... and what it needs, the same as Airflow's: the roots, the S3 endpoint, the registry.
    for key in (settings.LANDING_ENV, settings.ARTIFACT_ENV, settings.PIPELINES_ENV, "AWS_ENDPOINT_URL_S3",
                "AWS_DEFAULT_REGION", "MLFLOW_TRACKING_URI", "MLFLOW_DISABLE_TELEMETRY"):  # fmt: skip
        assert serving[key] == worker[key], key
    assert services["serving"].volumes == ["./include:/opt/airflow/include:ro"]  # the specs, read-only


def test_the_serving_users_minio_policy_allows_the_prediction_log_and_nothing_else(compose):
    from airflow_mlops import layout as s

    buckets = compose["services"]["minio-buckets"]
    policy_file = "./include/compose/serving-s3-policy.json"
    assert f"{policy_file}:/etc/airflow-mlops/serving-s3-policy.json:ro" in buckets["volumes"]
    script = buckets["entrypoint"]
    assert script.startswith('/bin/sh -c "set -e;')  # a failed step fails the one-shot; serving waits for it
    assert "mc admin user add local $$MINIO_SERVING_USER $$MINIO_SERVING_PASSWORD" in script
    assert "mc admin policy create local airflow-mlops-serving /etc/airflow-mlops/serving-s3-policy.json" in script
    assert script.strip().endswith('mc admin policy attach local airflow-mlops-serving --user $$MINIO_SERVING_USER"')
    assert compose["services"]["serving"]["depends_on"]["minio-buckets"] == {
        "condition": "service_completed_successfully"
    }
    policy = json.loads((REPO / policy_file).read_text())
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow" and all(a.startswith("s3:") and "*" not in a for a in statement["Action"])
    assert not {"s3:DeleteObject", "s3:ListBucket", "s3:ListAllMyBuckets"} & set(statement["Action"])
    (resource,) = statement["Resource"]
    # The prefix the serving app writes: settings.prediction_log_dir under the artifact root s3://mlops.
    artifact_bucket = compose["services"]["serving"]["environment"][s.ARTIFACT_ENV].removeprefix("s3://")
    assert resource == f"arn:aws:s3:::{artifact_bucket}/*/prediction_log/*"
    assert s.prediction_log_dir("churn").endswith("/churn/prediction_log")


def test_the_bucket_makers_script_runs_each_step_in_order_and_fails_when_one_fails(tmp_path):
    """The entrypoint as compose runs it (interpolated, $$ -> $), against a fake ``mc`` that logs its calls."""
    import os
    import subprocess

    services, values = _loaded()
    argv = services["minio-buckets"].entrypoint + services["minio-buckets"].command
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "mc"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\ncase "$*" in *"$FAIL_ON"*) exit 1;; esac\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{fake.parent}{os.pathsep}/usr/bin:/bin",
        **{k: services["minio-buckets"].environment[k] for k in services["minio-buckets"].environment},
    }

    def run(fail_on: str) -> int:
        calls.write_text("")
        return subprocess.run(argv, env={**env, "FAIL_ON": fail_on}, timeout=30, check=False).returncode

    assert run("no such step") == 0
    user, password = "airflow-mlops-serving", values["MINIO_SERVING_PASSWORD"]
    assert calls.read_text().splitlines() == [
        f"alias set local http://minio:9000 minio {values['MINIO_ROOT_PASSWORD']}",
        "mb --ignore-existing local/mlflow local/landing local/mlops",
        f"admin user add local {user} {password}",
        "admin policy create local airflow-mlops-serving /etc/airflow-mlops/serving-s3-policy.json",
        f"admin policy detach local airflow-mlops-serving --user {user}",
        f"admin policy attach local airflow-mlops-serving --user {user}",
    ]
    assert run("policy detach") == 0  # not attached yet (the first start): fine
    for step in ("mb --ignore-existing", "user add", "policy create", "policy attach"):
        assert run(step) == 1, step
    assert run("policy create") == 1 and "policy attach" not in calls.read_text()  # it stops at the failure


def _seconds(duration: str) -> float:
    """A compose duration (``90s``, ``1m30s``, ``2m``) in seconds."""
    import re

    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and any(parts.groups()), f"unreadable duration {duration!r}"
    minutes, seconds = (int(g or 0) for g in parts.groups())
    return minutes * 60.0 + seconds


def test_serving_gets_time_to_drain_requests_and_write_its_prediction_log(compose):
    """Docker's default 10 s would SIGKILL the app mid-shutdown, losing the log's rows unreported."""
    from airflow_mlops.cli import build_parser
    from airflow_mlops.core.operations.prediction_log.writer import CLOSE_DEADLINE_SECONDS

    service = compose["services"]["serving"]
    command = service["command"].split()
    arguments = build_parser().parse_args(command)
    needed = arguments.graceful_timeout + CLOSE_DEADLINE_SECONDS
    assert _seconds(service["stop_grace_period"]) > needed
