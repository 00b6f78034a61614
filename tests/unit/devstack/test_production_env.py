"""docker-compose.yml read as data and mapped onto this machine (the native production stack)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlops import layout
from airflow_mlops.devstack import compose_env
from airflow_mlops.devstack import production_env as native

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def test_interpolation_follows_composes_rules():
    env = {"SET": "value", "EMPTY": ""}
    assert compose_env.interpolate("a ${SET} b", env) == "a value b"
    assert compose_env.interpolate("${UNSET:-fallback} ${EMPTY:-fallback} ${EMPTY-kept}", env) == "fallback fallback "
    assert compose_env.interpolate("$$HOME ${SET:?needed}", env) == "$HOME value"
    with pytest.raises(compose_env.MissingVariable, match=r"EMPTY is required by docker-compose\.yml: needed"):
        compose_env.interpolate("${EMPTY:?needed}", env)
    with pytest.raises(compose_env.MissingVariable, match="UNSET"):
        compose_env.interpolate("${UNSET?}", env)


def test_the_compose_file_refuses_to_start_without_each_secret():
    required = compose_env.required_variables()
    assert {
        "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
        "POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "MINIO_ROOT_PASSWORD", "AIRFLOW_MLOPS_SERVE_TOKEN",
    } <= set(required)  # fmt: skip
    values = native.generated_secrets(required)
    services = compose_env.load(values)
    for name in required:
        with pytest.raises(compose_env.MissingVariable, match=name):
            compose_env.load({k: v for k, v in values.items() if k != name})
    assert services["airflow-worker"].argv == ["airflow", "celery", "worker"]
    assert services["airflow-init"].argv == ["bash", "-c", "airflow db migrate"]
    assert services["mlflow"].argv[:2] == ["mlflow", "server"]
    assert compose_env.buckets(services["minio-buckets"]) == ["mlflow", "landing", "mlops"]
    from cryptography.fernet import Fernet

    Fernet(values["AIRFLOW__CORE__FERNET_KEY"].encode())  # a valid key, not just a random string


def test_no_literal_secret_in_the_compose_file():
    """Line by line: every password, key and token is a ${VAR:?...} (a default only for the MinIO user name)."""
    secretish = ("PASSWORD", "SECRET", "FERNET", "TOKEN", "JWT")
    for number, line in enumerate((REPO / "docker-compose.yml").read_text().splitlines(), 1):
        key, sep, value = line.strip().partition(":")
        if sep and any(word in key for word in secretish) and value.strip():
            assert value.strip().startswith("${") and ":?" in value, f"line {number}: {line.strip()}"
    for url in ("airflow:airflow@", "mlflow:mlflow@", "minio-secret"):
        assert url not in (REPO / "docker-compose.yml").read_text()


def _endpoints() -> native.Endpoints:
    return native.Endpoints(
        host="127.0.0.1", postgres_port=5432, redis_port=6379, redis_db=7, s3_port=9100, mlflow_port=5100,
        airflow_port=8100, serving_port=8200, databases={"airflow": "s_airflow", "mlflow": "s_mlflow"},
        db_user="s_role", db_password="pw",
    )  # fmt: skip


def test_service_addresses_map_to_this_machine_and_the_stacks_own_databases():
    e = _endpoints()
    assert native.map_urls("postgresql+psycopg2://airflow:x@postgres:5432/airflow", e) == (
        "postgresql+psycopg2://s_role:pw@127.0.0.1:5432/s_airflow"
    )
    assert native.map_urls("db+postgresql+psycopg2://airflow:x@postgres:5432/airflow", e).endswith("/s_airflow")
    assert native.map_urls("redis://redis:6379/0", e) == "redis://127.0.0.1:6379/7"
    assert native.map_urls("http://airflow-apiserver:8080/execution/", e) == "http://127.0.0.1:8100/execution/"
    conn = json.loads(native.map_urls('{"extra": {"endpoint_url": "http://minio:9000"}}', e))
    assert conn["extra"]["endpoint_url"] == "http://127.0.0.1:9100"
    # Buckets are not hosts, and addresses of other hosts stay as they are.
    assert native.map_urls("s3://mlflow/ s3://mlops/airflow-logs", e) == "s3://mlflow/ s3://mlops/airflow-logs"
    assert native.map_urls("https://example.org/mlflow", e) == "https://example.org/mlflow"
    with pytest.raises(ValueError, match="names database 'other'"):
        native.map_urls("postgresql://u:p@postgres:5432/other", e)


def test_each_role_gets_its_own_directories_and_the_compose_environment(tmp_path):
    values = native.generated_secrets(compose_env.required_variables())
    services = compose_env.load(values)
    folders = native.Folders(dags=tmp_path / "dags", pipelines=tmp_path / "pipelines")
    envs = {}
    for role in ("airflow-worker-1", "airflow-worker-2"):
        dirs = native.RoleDirs(tmp_path / role)
        envs[role] = native.role_environment(services["airflow-worker"], _endpoints(), folders, dirs, role, {"X": "1"})
    one, two = envs["airflow-worker-1"], envs["airflow-worker-2"]
    for key in ("AIRFLOW_HOME", "HOME", "TMPDIR", layout.HOME_ENV):
        assert one[key] != two[key] and one[key].startswith(str(tmp_path / "airflow-worker-1")), key
    assert one["AIRFLOW__CORE__FERNET_KEY"] == two["AIRFLOW__CORE__FERNET_KEY"] == values["AIRFLOW__CORE__FERNET_KEY"]
    assert one["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert one[layout.PIPELINES_ENV] == str(tmp_path / "pipelines")
    assert one[layout.LANDING_ENV] == "s3://landing" and one["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9100"
    assert (
        one["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == native.HOSTNAME_CALLABLE
        and one[native.HOSTNAME_ENV] == "airflow-worker-1"
    )
    assert one["X"] == "1" and one["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_the_native_serving_role_gets_a_complete_environment_without_airflows_secrets(tmp_path):
    """The serving service no longer inherits Airflow's environment: natively it still has all it needs."""
    from airflow_mlops.serving.config import TOKEN_ENV

    values = native.generated_secrets(compose_env.required_variables())
    services = compose_env.load(values)
    folders = native.Folders(pipelines=tmp_path / "pipelines")
    dirs = native.RoleDirs(tmp_path / "serving")
    env = native.role_environment(services["serving"], _endpoints(), folders, dirs, "serving", {})
    assert (
        env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5100" and env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9100"
    )
    assert env[layout.ARTIFACT_ENV] == "s3://mlops" and env[layout.LANDING_ENV] == "s3://landing"
    assert env[layout.PIPELINES_ENV] == str(tmp_path / "pipelines") and env[TOKEN_ENV] == values[TOKEN_ENV]
    keys = (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    assert keys == ("airflow-mlops-serving", values["MINIO_SERVING_PASSWORD"])
    argv = native.role_argv(services["serving"], _endpoints(), folders, dirs)
    assert argv[:2] == ["airflow-mlops", "serve"] and argv[2] == str(tmp_path / "pipelines" / "churn.yaml")
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "8200"
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
                "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):  # fmt: skip
        assert key not in env, key
    for name in ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "MINIO_ROOT_PASSWORD", "AIRFLOW__CORE__FERNET_KEY"):
        assert all(values[name] not in value for value in env.values()), name


def test_the_mlflow_command_binds_locally_and_keeps_its_bucket(tmp_path):
    services = compose_env.load(native.generated_secrets(compose_env.required_variables()))
    argv = native.role_argv(services["mlflow"], _endpoints(), native.Folders(), native.RoleDirs(tmp_path))
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "5100"
    assert argv[argv.index("--artifacts-destination") + 1] == "s3://mlflow/"
    assert argv[argv.index("--backend-store-uri") + 1] == "postgresql+psycopg2://s_role:pw@127.0.0.1:5432/s_mlflow"
    assert "127.0.0.1:5100" in argv[argv.index("--allowed-hosts") + 1].split(",")


def test_the_hostname_callable_names_the_role(monkeypatch):
    from airflow_mlops.devstack.hostname import native_hostname

    monkeypatch.setenv(native.HOSTNAME_ENV, "airflow-worker-2")
    assert native_hostname() == "airflow-worker-2"
    monkeypatch.delenv(native.HOSTNAME_ENV)
    assert native_hostname()  # the machine's FQDN


def _cli(*argv: str) -> int:
    from airflow_mlops.cli import build_parser

    args = build_parser().parse_args(["stack", *argv])
    return int(args.func(args))


def test_stack_production_commands_refuse_bad_input_and_report_no_stack(tmp_path, capsys):
    root = str(tmp_path / "prod")
    assert _cli("up", "--production", "--root", root, "--env", "NOT_AIRFLOW=1") == 2
    assert "--env 'NOT_AIRFLOW=1' is not KEY=VALUE with an AIRFLOW... key" in capsys.readouterr().err
    assert _cli("up", "--production", "--root", root, "--workers", "0") == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert _cli("status", "--production", "--root", root) == 1
    assert "no production stack recorded" in capsys.readouterr().out
    assert _cli("down", "--production", "--root", root) == 0
    assert "nothing to stop" in capsys.readouterr().out
    # A stack recorded in the folder (a running one, or what a killed `up` left): never a second one over it.
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "production.json").write_text(json.dumps({"root": root, "processes": [], "endpoints": {}}))
    assert _cli("up", "--production", "--root", root) == 1
    assert "stack down --production" in capsys.readouterr().err
    assert _cli("down", "--production", "--root", root) == 0  # nothing ran: the record is simply removed
    assert not (tmp_path / "prod" / "production.json").exists()
    (tmp_path / "prod" / "production.json").write_text("{not json")
    assert _cli("up", "--production", "--root", root) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "production.json" in err
    assert _cli("status", "--production", "--root", root) == 1
    assert _cli("down", "--production", "--root", root) == 1
    assert "cannot read" in capsys.readouterr().err
