"""The production shape of docker-compose.yml, run natively: for CI, and for users without Docker.

Reads the compose file (``devstack.compose_env``), maps its service hosts onto this machine
(``devstack.production_env``) and starts each role as its own process, with its own
AIRFLOW_HOME, HOME, TMPDIR and working directory, in this order:

1. ``moto_server`` as the S3 endpoint, with the buckets the compose file's bucket maker creates;
2. a database role and two uniquely named PostgreSQL databases (Airflow's and MLflow's) on the
   machine's PostgreSQL, and a Redis database number nobody else uses;
3. the MLflow server (PostgreSQL store, ``s3://`` artifacts), then ``airflow db migrate``;
4. api-server, scheduler, dag-processor, triggerer, ``workers`` Celery workers, the serving app.

``stop()`` (``airflow-mlops stack down --production``) stops every process group, drops the
databases and the role and flushes the Redis database. ``production.json`` in the root folder
records all of it, so a later ``down`` cleans up after a killed ``up``; the generated secrets
(the compose file's required variables) are written to ``secrets.env`` (mode 0600) only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from airflow_mlops.devstack import compose_env
from airflow_mlops.devstack import production_env as native
from airflow_mlops.devstack.processes import ProcessRecord, alive, free_port, members, port_open, terminate
from airflow_mlops.devstack.production_config import (
    AIRFLOW_ROLES,
    SECRETS_FILE,
    STATE_FILE,
    WORKER,
    ProductionConfig,
    ProductionState,
    from_environment,
    read_secrets,
    read_state,
    write_secrets,
)


def _admin_connect(cfg: ProductionConfig, database: str = "postgres") -> Any:
    import psycopg2

    connection = psycopg2.connect(host=cfg.host, port=cfg.postgres_port, user=cfg.postgres_admin, dbname=database)
    connection.autocommit = True
    return connection


def _take_redis_db(cfg: ProductionConfig, owner: str) -> int:
    """A Redis database number that holds nothing, marked as this stack's (never 0: the default)."""
    import redis

    for number in range(1, 16):
        client = redis.Redis(host=cfg.host, port=cfg.redis_port, db=number)
        if client.set("airflow-mlops:stack", owner, nx=True):
            if client.dbsize() == 1:
                return number
            client.delete("airflow-mlops:stack")  # someone else's data is there: not ours to share
    raise RuntimeError(f"no empty Redis database on {cfg.host}:{cfg.redis_port} (1-15 all hold keys)")


class ProductionStack:
    """Start, watch and stop the native production stack described by ``config``."""

    def __init__(self, config: ProductionConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # started by this object
        self.records: dict[str, ProcessRecord] = {}  # every role, also of an attached stack

    @classmethod
    def attach(cls, root: Path) -> ProductionStack | None:
        """The stack ``up`` recorded in ``root`` (None when nothing is recorded)."""
        state = read_state(root)
        if state is None:
            return None
        saved = state.config
        cfg = ProductionConfig(
            root=root, compose_file=Path(saved["compose_file"]), dags_folder=Path(saved["dags_folder"]),
            pipelines_folder=Path(saved["pipelines_folder"]), workers=int(saved["workers"]),
            serve=bool(saved["serve"]), host=state.endpoints["host"], extra_env=dict(saved["extra_env"]),
            variables=read_secrets(root / SECRETS_FILE), endpoints=native.Endpoints(**state.endpoints),
        )  # fmt: skip
        stack = cls(cfg)
        stack.records = {record.name: record for record in state.records()}
        return stack

    def alive(self) -> dict[str, bool]:
        return {name: alive(record) for name, record in self.records.items()}

    # -- start ---------------------------------------------------------------------------------
    def start(self, timeout: float = 420.0) -> ProductionStack:
        cfg = self.config
        if (cfg.root / STATE_FILE).exists():
            raise RuntimeError(f"{cfg.root / STATE_FILE} records a production stack; run `stack down` first")
        cfg.logs.mkdir(parents=True, exist_ok=True)
        required = compose_env.required_variables(cfg.compose_file)
        referenced = compose_env.referenced_variables(cfg.compose_file)
        cfg.variables = {**native.generated_secrets(required), **from_environment(referenced), **cfg.variables}
        write_secrets(cfg.root / SECRETS_FILE, {k: v for k, v in cfg.variables.items() if k in referenced})
        owner = f"amlops_{secrets.token_hex(4)}"
        ports = {name: cfg.ports.get(name) or free_port(cfg.host) for name in ("s3", "mlflow", "airflow", "serving")}
        cfg.endpoints = native.Endpoints(
            host=cfg.host, postgres_port=cfg.postgres_port, redis_port=cfg.redis_port, redis_db=0,
            s3_port=ports["s3"], mlflow_port=ports["mlflow"], airflow_port=ports["airflow"],
            serving_port=ports["serving"], databases={"airflow": f"{owner}_airflow", "mlflow": f"{owner}_mlflow"},
            db_user=owner, db_password=cfg.variables.get("POSTGRES_PASSWORD") or secrets.token_urlsafe(16),
        )  # fmt: skip
        self._record()  # from here on, `down` knows what to undo
        try:
            self._create_databases()
            cfg.endpoints.redis_db = _take_redis_db(cfg, owner)
            self._record()
            self._start_s3()
            self._start_mlflow()
            self._migrate(timeout)
            self._start_airflow()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _record(self) -> None:
        cfg = self.config
        state = ProductionState(
            root=str(cfg.root),
            processes=[record.to_json() for record in self.records.values()],
            endpoints=asdict(cfg.endpoints) if cfg.endpoints else {},
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            config={
                "compose_file": str(cfg.compose_file), "dags_folder": str(cfg.dags_folder),
                "pipelines_folder": str(cfg.pipelines_folder), "workers": cfg.workers, "serve": cfg.serve,
                "extra_env": cfg.extra_env,
            },
        )  # fmt: skip
        tmp = cfg.root / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        os.replace(tmp, cfg.root / STATE_FILE)

    def _create_databases(self) -> None:
        endpoints = self.config._ready()
        with contextlib.closing(_admin_connect(self.config)) as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{endpoints.db_user}" LOGIN PASSWORD %s', (endpoints.db_password,))
            for database in endpoints.databases.values():
                cursor.execute(f'CREATE DATABASE "{database}" OWNER "{endpoints.db_user}"')

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        with open(self.config.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.processes[name] = proc
        self.records[name] = ProcessRecord.of(name, proc.pid)
        self._record()
        return proc

    def _start_s3(self) -> None:
        cfg = self.config
        dirs = cfg.role_dirs("s3")
        dirs.create()
        env = {**native.base_environment(), "HOME": str(dirs.home), "TMPDIR": str(dirs.tmp)}
        self._spawn("s3", ["moto_server", "-H", cfg.host, "-p", str(cfg._ready().s3_port)], env, dirs.work)
        _wait(lambda: port_open(cfg.host, cfg._ready().s3_port), 60, "moto_server (S3)", self.processes["s3"])
        import boto3

        env = cfg.client_environment()
        s3 = boto3.client(
            "s3", endpoint_url=cfg.s3_url, region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        for bucket in compose_env.buckets(cfg.services()["minio-buckets"]):
            s3.create_bucket(Bucket=bucket)

    def _start_mlflow(self) -> None:
        cfg = self.config
        dirs = cfg.role_dirs("mlflow")
        dirs.create()
        service = cfg.services()["mlflow"]
        env = native.role_environment(service, cfg._ready(), cfg.folders(), dirs, "mlflow", {})
        self._spawn("mlflow", native.role_argv(service, cfg._ready(), cfg.folders(), dirs), env, dirs.work)

    def _migrate(self, timeout: float) -> None:
        cfg = self.config
        dirs = cfg.role_dirs("airflow-init")
        dirs.create()
        service = cfg.services()["airflow-init"]
        env = cfg.role_environment("airflow-init", "airflow-init")
        with open(cfg.logs / "airflow-init.log", "ab") as log:
            done = subprocess.run(
                native.role_argv(service, cfg._ready(), cfg.folders(), dirs), env=env, cwd=dirs.work,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate exited with {done.returncode}; see {cfg.logs / 'airflow-init.log'}")

    def _start_airflow(self) -> None:
        cfg = self.config
        endpoints = cfg._ready()
        worker_ports = [free_port(cfg.host) for _ in range(cfg.workers)]
        shared = {
            # One API port and base URL for every role (the execution API URL names it too).
            "AIRFLOW__API__HOST": cfg.host,
            "AIRFLOW__API__PORT": str(endpoints.airflow_port),
            "AIRFLOW__API__BASE_URL": cfg.airflow_url,
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port(cfg.host)),
            # The api-server reads live logs of running tasks from worker 1's log server; finished
            # tasks' logs come from the S3 bucket, whichever worker ran them.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_ports[0]),
        }
        services = cfg.services()
        roles = [(name, name) for name in AIRFLOW_ROLES]
        roles += [(WORKER, f"{WORKER}-{n + 1}") for n in range(cfg.workers)]
        if cfg.serve and "serving" in services:
            roles.append(("serving", "serving"))
        for service_name, role in roles:
            dirs = cfg.role_dirs(role)
            dirs.create()
            env = {**cfg.role_environment(service_name, role), **shared}
            argv = native.role_argv(services[service_name], endpoints, cfg.folders(), dirs)
            if service_name == WORKER:
                index = int(role.rsplit("-", 1)[1]) - 1
                env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(worker_ports[index])
                argv += ["--celery-hostname", f"{role}@%h"]
            self._spawn(role, argv, env, dirs.work)

    def wait_healthy(self, timeout: float) -> None:
        """Until MLflow and every Airflow component answer healthy, and each worker said ready."""
        cfg = self.config
        deadline = time.monotonic() + timeout
        while True:
            for name, running in self.alive().items():
                if not running:
                    raise RuntimeError(f"{name} exited; see {cfg.logs / (name + '.log')}")
            problems = self.health()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"production stack not healthy after {timeout:.0f}s: {problems}; logs in {cfg.logs}")
            time.sleep(2)

    def health(self) -> dict[str, str]:
        """Unhealthy parts -> why (empty when everything is up)."""
        cfg = self.config
        problems: dict[str, str] = {}
        urls = (("mlflow", f"{cfg.mlflow_url}/health"), ("airflow", f"{cfg.airflow_url}/api/v2/monitor/health"))
        for name, url in urls:
            try:
                response = httpx.get(url, timeout=5)
            except httpx.HTTPError as exc:
                problems[name] = f"no answer ({type(exc).__name__})"
                continue
            if response.status_code != 200:
                problems[name] = f"HTTP {response.status_code}"
            elif name == "airflow":
                body = response.json()
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
                    status = (body.get(part) or {}).get("status")
                    if status != "healthy":
                        problems[part] = str(status)
        for name in self.records:
            if name.startswith(WORKER) and b" ready." not in _read(cfg.logs / f"{name}.log"):
                problems[name] = "celery worker not ready"
        return problems

    def admin_password(self) -> str:
        """The password of user ``admin`` the api-server's simple auth manager generated."""
        path = self.config.role_dirs("airflow-apiserver").airflow_home / "simple_auth_manager_passwords.json.generated"
        try:
            return str(json.loads(path.read_text())["admin"])
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeError(f"the api-server has not written its admin password to {path} yet") from exc

    # -- stop ----------------------------------------------------------------------------------
    def kill_role(self, role: str) -> set[int]:
        """SIGKILL a role and everything it started (its whole session: tasks included), as a lost machine."""
        pids = members([self.records[role]])
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if role in self.processes:
            self.processes[role].wait(timeout=30)
        return pids

    def stop_role(self, role: str, timeout: float = 60.0) -> set[int]:
        """SIGTERM one role (the serving app writes its prediction log), SIGKILL after ``timeout``."""
        pids = terminate([self.records[role]], timeout)
        if role in self.processes:
            self.processes[role].wait(timeout=10)
        return pids

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every process, drop the databases and role, flush the Redis database; safe to call twice."""
        down(self.config.root, timeout)
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.processes.clear()


def down(root: Path, timeout: float = 30.0, postgres_admin: str = "postgres") -> bool:
    """Undo what ``production.json`` of ``root`` records; False when nothing was recorded."""
    path = root / STATE_FILE
    state = read_state(root)
    if state is None:
        return False
    # Airflow and the serving app first (they flush logs to S3 and MLflow), then MLflow, then S3.
    backends = ("mlflow", "s3")
    terminate([r for r in state.records() if r.name not in backends], timeout)
    terminate([r for r in state.records() if r.name == "mlflow"], timeout)
    terminate([r for r in state.records() if r.name == "s3"], timeout)
    endpoints = state.endpoints
    if endpoints:
        cfg = ProductionConfig(root=root, postgres_port=endpoints["postgres_port"], postgres_admin=postgres_admin,
                               redis_port=endpoints["redis_port"], host=endpoints["host"])  # fmt: skip
        with contextlib.closing(_admin_connect(cfg)) as connection, connection.cursor() as cursor:
            for database in endpoints["databases"].values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            cursor.execute(f'DROP ROLE IF EXISTS "{endpoints["db_user"]}"')
        if endpoints.get("redis_db"):
            import redis

            redis.Redis(host=cfg.host, port=cfg.redis_port, db=endpoints["redis_db"]).flushdb()
    path.unlink(missing_ok=True)
    return True


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _wait(check: Any, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up in {timeout:.0f}s")
        time.sleep(0.3)
