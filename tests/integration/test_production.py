"""The production shape of docker-compose.yml, run natively, through the whole loop and a lost worker.

``airflow-mlops stack up --production`` starts the compose file's roles as processes of this
machine (two Celery workers on Redis, Airflow and MLflow on PostgreSQL, S3 by moto_server,
each role with its own directories: no shared disk). Then, as an operator would:

1. five labeled files are uploaded at once through boto3 into the S3 landing zone;
2. while their training run's trials run, the worker running one of them is killed with
   SIGKILL, tasks and all; the trial is retried on the other worker and the run succeeds;
3. drifted rows land for scoring -> scoring -> monitoring -> drift -> retraining;
4. the compose file's serving app answers with the champion and logs its predictions to S3;
5. ``stack down --production`` removes the databases, the role and the Redis database.

Everything the tests check is collected by the module fixture before ``down``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.devstack.chaos import WorkerKiller
from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.production import ProductionStack
from airflow_mlops.devstack.rest import AirflowClient
from airflow_mlops.devstack.stack import single_pipeline_project

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "airflow-mlops")
HEARTBEAT_TIMEOUT = 30
UPLOADS = 5
ROWS = 2000


def _s3_client(stack: ProductionStack) -> Any:
    import boto3

    env = stack.config.client_environment()
    return boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip


def _upload_at_once(stack: ProductionStack, folder: Path) -> list[str]:
    """Five labeled batches, uploaded concurrently with boto3 into the training inbox."""
    bucket, _, prefix = layout.landing_dir("churn", "training").removeprefix("s3://").partition("/")
    files = [
        synthetic.land_batch("churn", str(folder), dt.date(2026, 11, 2) + dt.timedelta(days=n), ROWS, seed=10 + n)
        for n in range(UPLOADS)
    ]
    s3 = _s3_client(stack)
    start = threading.Barrier(UPLOADS)

    def put(path: str) -> str:
        start.wait()
        s3.upload_file(path, bucket, f"{prefix}/{Path(path).name}")
        return Path(path).name

    with concurrent.futures.ThreadPoolExecutor(UPLOADS) as pool:
        return sorted(pool.map(put, [f.uri for f in files]))


def _claims(destination: str) -> list[dict[str, Any]]:
    """Every claim into the lake folder, with its files and acks."""
    from airflow_mlops.core.io import storage

    root = landing.claims_root(destination)
    out = []
    for name in landing._children(root):
        if name.startswith("_"):
            continue
        record = landing.load_claim(f"{root}/{name}")
        acks = [storage.read_json(f"{record.uri}/{ack}") for ack in landing.acks(record.uri)]
        out.append({"claim_id": record.claim_id, "files": [f["source"].rsplit("/", 1)[-1] for f in record.files],
                    "claimed": record.claimed, "acks": acks})  # fmt: skip
    return out


def _s3_objects(stack: ProductionStack) -> dict[str, bytes]:
    s3 = _s3_client(stack)
    out = {}
    for bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                out[f"s3://{bucket}/{item['Key']}"] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def _dump(database: str) -> bytes:
    return subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--no-owner", database],
                          check=True, capture_output=True).stdout  # fmt: skip


# Written by libraries for themselves, never by a DAG: Airflow's config, onnxruntime's device id and
# session marker, matplotlib's font cache (imported by Great Expectations).
LIBRARY_FILES = ("airflow/airflow.cfg", "home/.cache/", "tmp/.ses")


def _left_in(role_dir: Path) -> list[str]:
    """Files under a worker's directories other than what its libraries keep for themselves."""
    files = (str(p.relative_to(role_dir)) for p in role_dir.rglob("*") if p.is_file())
    return sorted(f for f in files if not f.startswith(LIBRARY_FILES))


def _task_instances(client: AirflowClient, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        for ti in client.task_instances(run["dag_id"], run["run_id"]):
            out.append({**ti, "dag_id": run["dag_id"], "run_id": run["run_id"]})
    return out


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    base = tmp_path_factory.mktemp("production")
    dags, pipelines = single_pipeline_project(base / "project")
    root = base / "stack"
    environment = dict(os.environ)
    # Every secret of the shape is random, the S3 access key too, so a leak of any of them is found.
    shell = {**environment, "MINIO_ROOT_USER": f"ak{secrets.token_hex(8)}"}
    up = [CLI, "stack", "up", "--production", "--root", str(root), "--dags-folder", str(dags),
          "--pipelines-folder", str(pipelines), "--timeout", "420",
          "--env", f"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT={HEARTBEAT_TIMEOUT}",
          # A task the killed worker had taken but not started waits this long in `queued`, then is sent again.
          "--env", f"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT={HEARTBEAT_TIMEOUT}",
          "--env", "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL=10",
          "--env", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5",
          "--env", "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=2"]  # fmt: skip
    started = time.monotonic()
    brought_up = subprocess.run(up, env=shell, capture_output=True, text=True, timeout=600)
    facts: dict[str, Any] = {"up": brought_up, "up_seconds": time.monotonic() - started}
    stack = ProductionStack.attach(root)
    status = [CLI, "stack", "status", "--production", "--root", str(root)]
    try:
        assert brought_up.returncode == 0 and stack is not None, brought_up.stdout + brought_up.stderr
        facts["status"] = subprocess.run(status, env=shell, capture_output=True, text=True, timeout=120)
        facts.update(_drive(stack, base))
        facts["status_after"] = subprocess.run(status, env=shell, capture_output=True, text=True, timeout=120)
        # Evidence collected: `down` now, so that what it leaves behind is checked too.
        facts["down"] = subprocess.run([CLI, "stack", "down", "--production", "--root", str(root)], env=shell,
                                       capture_output=True, text=True, timeout=300)  # fmt: skip
        facts["after_down"] = _leftovers(stack)
        yield facts
    finally:
        if "down" not in facts:  # the loop failed: still remove everything
            subprocess.run([CLI, "stack", "down", "--production", "--root", str(root)], env=shell, timeout=300)
        os.environ.clear()
        os.environ.update(environment)


def _drive(stack: ProductionStack, base: Path) -> dict[str, Any]:
    cfg = stack.config
    token = cfg.variables["AIRFLOW_MLOPS_SERVE_TOKEN"]
    demo = DemoLoop(stack, rows=ROWS, say=print, serving=(cfg.serving_url, token))  # type: ignore[arg-type]
    facts: dict[str, Any] = {"stack": stack, "demo": demo}
    loop_started = time.monotonic()
    demo._prepare()
    training = demo.dags["training"]
    killer = WorkerKiller(stack, AirflowClient(cfg.airflow_url, "admin", stack.admin_password()), training,
                          demo._seen[training])  # fmt: skip
    killer.start()
    facts["uploaded"] = _upload_at_once(stack, base / "uploads")
    lake = layout.lake_dir("churn", "labeled")
    claims: list[dict[str, Any]] = []
    for _ in range(UPLOADS):  # one run per claim; the watcher may claim the five files in one or more polls
        demo._await_run("training", "asset_triggered")
        claims = _claims(lake)
        if sorted(f for c in claims for f in c["files"]) == facts["uploaded"] and all(c["acks"] for c in claims):
            break
    killer.done.set()
    facts["killed"], facts["claims"] = killer.killed, claims
    facts["first_training_runs"] = len(demo.result.runs)
    facts["ingested"] = [demo.client.xcom(training, r["run_id"], "data.ingest") for r in demo.result.runs]
    demo._drift_and_retraining()
    demo._serve()
    facts["serving_stop"] = stack.stop_role("serving")  # SIGTERM: the app flushes its prediction log to S3
    facts["loop_seconds"] = time.monotonic() - loop_started
    demo._collect_registry()
    client = demo.client
    facts["task_instances"] = _task_instances(client, demo.result.runs)
    mlflow_client = Registry(cfg.mlflow_url).client
    experiments = mlflow_client.search_experiments()
    facts["mlflow_runs"] = [
        {"status": r.info.status, "name": r.info.run_name}
        for r in mlflow_client.search_runs([e.experiment_id for e in experiments], max_results=1000)
    ]
    facts["s3"] = _s3_objects(stack)
    endpoints = cfg._ready()
    facts["dumps"] = {name: _dump(db) for name, db in endpoints.databases.items()}
    facts["secrets"] = {**cfg.variables, "database password": endpoints.db_password}
    workers = [role for role in stack.records if role.startswith("airflow-worker")]
    deadline = time.monotonic() + 60  # a task's log is uploaded (then deleted) just after its state is set
    while True:
        facts["left"] = {role: _left_in(cfg.role_dirs(role).root) for role in workers}
        alive_left = [f for role, files in facts["left"].items() if role != (killer.killed or {}).get("worker")
                      for f in files]  # fmt: skip
        if not alive_left or time.monotonic() > deadline:
            break
        time.sleep(2)
    return facts


def _leftovers(stack: ProductionStack) -> dict[str, Any]:
    import psycopg2
    import redis

    endpoints = stack.config._ready()
    connection = psycopg2.connect(host="127.0.0.1", port=endpoints.postgres_port, user="postgres", dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{endpoints.db_user}%",))
            databases = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = %s", (endpoints.db_user,))
            roles = [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
    keys = redis.Redis(host="127.0.0.1", port=endpoints.redis_port, db=endpoints.redis_db).dbsize()
    return {
        "databases": databases,
        "roles": roles,
        "redis_keys": keys,
        "alive": [n for n, a in stack.alive().items() if a],
    }


# -- the shape comes up and the loop runs ------------------------------------------------------
def test_stack_up_production_starts_every_role_of_the_compose_file(production):
    assert production["up"].returncode == 0, production["up"].stderr
    for role in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-worker-1", "airflow-worker-2", "mlflow", "s3", "serving"):  # fmt: skip
        assert role in production["stack"].records
    assert production["status"].returncode == 0 and "status: UP" in production["status"].stdout
    # After the loop: the killed worker (and the serving app, stopped to flush its log) are reported down.
    after = production["status_after"]
    assert after.returncode == 1 and "status: NOT UP" in after.stdout
    killed = production["killed"]["worker"]
    assert any(line.split() == [killed, "NOT", "RUNNING"] for line in after.stdout.splitlines()), after.stdout
    print(f"stack up --production: {production['up_seconds']:.0f}s; loop: {production['loop_seconds']:.0f}s")


def test_every_run_has_its_trigger_and_succeeds(production):
    runs = production["demo"].result.runs
    assert production["demo"].result.failures == []
    first = production["first_training_runs"]
    assert [(r["dag_id"], r["run_type"], r["state"]) for r in runs[first:]] == [
        ("churn_scoring", "asset_triggered", "success"),
        ("churn_monitoring", "asset_triggered", "success"),
        ("churn_training", "asset_triggered", "success"),
    ]
    assert all(r["state"] == "success" and r["triggered_by"] == ["mlops.churn.landing.training"] for r in runs[:first])
    assert [r["triggered_by"] for r in runs[first:]] == [
        ["mlops.churn.landing.scoring"], ["mlops.churn.predictions"], ["mlops.churn.drift"],
    ]  # fmt: skip


def test_task_instances_ran_on_both_workers(production):
    hosts = {ti["hostname"] for ti in production["task_instances"] if ti.get("hostname")}
    assert {"airflow-worker-1", "airflow-worker-2"} <= hosts, hosts


# -- a lost worker ----------------------------------------------------------------------------
def test_a_killed_workers_trial_is_retried_on_the_other_worker_and_the_run_succeeds(production):
    killed = production["killed"]
    assert killed is not None, "no trial was seen running on a worker: nothing was killed"
    assert killed["pids"] >= 2  # the worker and the task processes it ran
    trial = next(
        ti for ti in production["task_instances"]
        if (ti["run_id"], ti["task_id"], ti["map_index"]) == (killed["run_id"], "model.trial", killed["map_index"])
    )  # fmt: skip
    assert trial["state"] == "success" and trial["try_number"] == 2
    assert trial["hostname"] != killed["worker"] and trial["hostname"].startswith("airflow-worker")
    run = next(r for r in production["demo"].result.runs if r["run_id"] == killed["run_id"])
    assert run["state"] == "success"
    finished = dt.datetime.fromisoformat(trial["end_date"].replace("Z", "+00:00"))
    started = dt.datetime.fromisoformat(trial["start_date"].replace("Z", "+00:00"))
    print(f"killed {killed['worker']} during trial {killed['map_index']}; the retry ran "
          f"{(finished - started).total_seconds():.0f}s on {trial['hostname']}")  # fmt: skip


def test_no_mlflow_run_is_left_running_and_the_champion_passed_its_gate(production):
    statuses = {r["status"] for r in production["mlflow_runs"]}
    assert "RUNNING" not in statuses, [r for r in production["mlflow_runs"] if r["status"] == "RUNNING"]
    result = production["demo"].result
    champion = next(v for v in result.versions if v["version"] == result.champion)
    assert champion["gate"] == "passed"
    assert [p["to_version"] for p in result.promotions][-1] == result.champion


# -- exactly once, no shared disk, no secrets ----------------------------------------------------
def test_five_files_uploaded_at_once_are_each_claimed_and_acknowledged_exactly_once(production):
    claims = production["claims"]
    assert sorted(f for c in claims for f in c["files"]) == production["uploaded"]
    assert all(len(c["acks"]) == 1 for c in claims)
    owners = [c["acks"][0]["run_id"] for c in claims]
    training_runs = {r["run_id"] for r in production["demo"].result.runs if r["dag_id"] == "churn_training"}
    assert set(owners) <= training_runs


def test_every_claimed_file_is_trained_on_by_the_run_that_acknowledged_it(production):
    claimed = sorted(uri for c in production["claims"] for uri in c["claimed"])
    read = sorted(uri for ingest in production["ingested"] for uri in ingest["claimed_sources"])
    assert read == claimed and len(read) == UPLOADS
    assert all(ingest["claimed_left_out"] in ({}, []) for ingest in production["ingested"])


def test_nothing_the_dags_wrote_is_left_in_the_workers_directories(production):
    killed = (production["killed"] or {}).get("worker")
    for role, files in production["left"].items():
        if role == killed:  # it died mid-task: only Airflow's own local copy of that attempt's log may remain
            files = [f for f in files if not f.startswith("airflow/logs/")]
        assert files == [], f"{role} kept {files}"


def test_no_secret_in_the_databases_the_s3_objects_or_the_task_logs(production):
    secrets_ = {name: value for name, value in production["secrets"].items() if len(value) >= 8}
    assert {"AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD",
            "AIRFLOW_MLOPS_SERVE_TOKEN", "MINIO_ROOT_USER", "database password"} <= set(secrets_)  # fmt: skip
    task_logs = [uri for uri in production["s3"] if "/airflow-logs/" in uri]
    assert len(task_logs) > 20  # the logs are in the bucket
    for name, value in secrets_.items():
        needle = value.encode()
        for database, dump in production["dumps"].items():
            assert needle not in dump, f"{name} is in the {database} database"
        for uri, body in production["s3"].items():
            assert needle not in body, f"{name} is in {uri}"


# -- serving and shutdown ----------------------------------------------------------------------
def test_the_compose_serving_app_answers_with_the_champion_and_logs_to_s3(production):
    served = production["demo"].result.serving
    assert served["model_version"] == production["demo"].result.champion and len(served["predictions"]) == 5
    logs = [body for uri, body in production["s3"].items() if "/prediction_log/" in uri and "-serving-" in uri]
    assert any(served["request_id"].encode() in body for body in logs)


def test_stack_down_production_removes_processes_databases_role_and_redis_data(production):
    assert production["down"].returncode == 0, production["down"].stderr
    assert production["after_down"] == {"databases": [], "roles": [], "redis_keys": 0, "alive": []}


def test_trials_on_a_celery_worker_cap_their_threads_to_the_workers_share_of_cores(production):
    """Two task slots per worker (compose's worker concurrency) on this host's cores: each trial gets its share."""
    from airflow_mlops.core.model.threads import available_cores

    slots = int(
        production["stack"].config.role_environment("airflow-worker", "check")["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
    )
    expected = max(1, available_cores() // slots)
    trial_logs = [body.decode() for uri, body in production["s3"].items() if "task_id=model.trial" in uri]
    assert trial_logs
    for text in trial_logs:
        assert f"BLAS/OpenMP threads for this trial: {expected} (" in text, text[-2000:]
