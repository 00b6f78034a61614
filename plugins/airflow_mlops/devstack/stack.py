"""The embedded default deployment: ``airflow standalone`` plus an MLflow tracking server.

Everything lives under one runtime folder (gitignored ``.runtime/`` by default):
Airflow's home and SQLite database, MLflow's SQLite store and artifacts, the
landing zone, the artifact root, the service logs and ``stack.json``, the record of
the processes started (so that a later ``stop_recorded`` - ``airflow-mlops stack
down``, or the next demo after a killed one - stops exactly them). One start/stop
implementation serves the demo (in-process: it stops the stack when it ends) and
``airflow-mlops stack up`` (detached: the services outlive the command). Production
uses docker-compose.yml instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from airflow_mlops import layout
from airflow_mlops.devstack.processes import ProcessRecord, alive, free_port, port_open, terminate

REPO_ROOT = Path(__file__).resolve().parents[3]
STATE_FILE = "stack.json"


def single_pipeline_project(folder: Path, pipeline: str = "churn") -> tuple[Path, Path]:
    """A project holding one example pipeline of this checkout: (its dags folder, its pipelines folder).

    The DAG files find their spec beside them (``<folder>/include/pipelines``), as in the checkout;
    the tests and benchmarks that need one pipeline alone (fewer DAGs to parse and schedule) use it.
    """
    dags, pipelines = folder / "dags", folder / "include" / "pipelines"
    dags.mkdir(parents=True)
    pipelines.mkdir(parents=True)
    for path in (REPO_ROOT / "dags").glob(f"{pipeline}_*.py"):
        shutil.copy(path, dags / path.name)
    shutil.copy(REPO_ROOT / "include" / "pipelines" / f"{pipeline}.yaml", pipelines / f"{pipeline}.yaml")
    return dags, pipelines


@dataclass
class StackConfig:
    """Where the stack lives, what it runs (dags, pipeline specs) and on which ports."""

    root: Path
    dags_folder: Path = REPO_ROOT / "dags"
    pipelines_folder: Path = REPO_ROOT / "include" / "pipelines"
    # None: an empty folder in the runtime folder (the package's own plugin loads through its
    # ``airflow.plugins`` entry point, whatever the plugins folder).
    plugins_folder: Path | None = None
    airflow_port: int = 8080
    mlflow_port: int = 5000
    host: str = "127.0.0.1"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def mlops_env(self) -> dict[str, str]:
        """The airflow-mlops roots of this stack: all inside the runtime folder."""
        return {
            layout.HOME_ENV: str(self.root),
            layout.LANDING_ENV: str(self.root / "landing"),
            layout.ARTIFACT_ENV: str(self.root / "artifacts"),
            layout.PIPELINES_ENV: str(self.pipelines_folder),
        }

    def environment(self) -> dict[str, str]:
        """The environment every Airflow and MLflow process of the stack runs with."""
        bin_dir = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.update(
            {
                "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder or self.airflow_home / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
                "AIRFLOW__API__PORT": str(self.airflow_port),
                "AIRFLOW__API__HOST": self.host,
                "AIRFLOW__API__BASE_URL": self.airflow_url,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # Tasks started before standalone's api-server listens (~20 s after the scheduler) die unstarted
                # after Airflow's 5 tries (~15 s); 20 tries 5-15 s apart wait >= 95 s (docs/deployment.md).
                "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "20",
                "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "5",
                "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "15",
                "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": self.mlflow_url}),
                **self.mlops_env(),
                "MLFLOW_TRACKING_URI": self.mlflow_url,
                "GX_ANALYTICS_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root), "dags_folder": str(self.dags_folder),
            "pipelines_folder": str(self.pipelines_folder),
            "plugins_folder": str(self.plugins_folder) if self.plugins_folder else None,
            "airflow_port": self.airflow_port, "mlflow_port": self.mlflow_port, "host": self.host,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackConfig:
        return cls(
            root=Path(data["root"]), dags_folder=Path(data["dags_folder"]),
            pipelines_folder=Path(data["pipelines_folder"]),
            plugins_folder=Path(data["plugins_folder"]) if data.get("plugins_folder") else None,
            airflow_port=int(data["airflow_port"]), mlflow_port=int(data["mlflow_port"]), host=str(data["host"]),
        )  # fmt: skip


@dataclass
class StackState:
    """What ``stack.json`` records: the services, who drives them, with which configuration."""

    config: StackConfig
    processes: list[ProcessRecord]
    detached: bool
    driver: ProcessRecord | None = None
    started_at: str = ""

    def alive(self) -> dict[str, bool]:
        return {record.name: alive(record) for record in self.processes}

    def running(self) -> bool:
        """Every service runs and, for an in-process (demo) stack, the driver too."""
        services = bool(self.processes) and all(self.alive().values())
        return services and (self.detached or (self.driver is not None and alive(self.driver)))

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(), "processes": [p.to_json() for p in self.processes],
            "detached": self.detached, "driver": self.driver.to_json() if self.driver else None,
            "started_at": self.started_at,
        }  # fmt: skip


class AlreadyRunning(RuntimeError):
    """A stack recorded in this runtime folder still runs."""

    def __init__(self, state: StackState) -> None:
        self.state = state
        super().__init__(f"a stack already runs in {state.config.root} (started {state.started_at})")


def state_path(root: Path) -> Path:
    return root / STATE_FILE


def read_state(root: Path) -> StackState | None:
    """The recorded stack of ``root``, or None when nothing was recorded (or ``down`` ran)."""
    path = state_path(root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read {path}: {exc}; stop the processes it named by hand and delete it") from exc
    driver = data.get("driver")
    return StackState(
        config=StackConfig.from_json(data["config"]),
        processes=[ProcessRecord.from_json(p) for p in data["processes"]],
        detached=bool(data["detached"]),
        driver=ProcessRecord.from_json(driver) if driver else None,
        started_at=str(data.get("started_at", "")),
    )


def write_state(state: StackState) -> None:
    path = state_path(state.config.root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2))
    os.replace(tmp, path)  # never half-written: a reader sees the old record or the new one


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Serialise start and stop of one runtime folder (two `up`s at once start one stack)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "stack.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def stop_recorded(root: Path, timeout: float = 30.0) -> set[int]:
    """Stop every process ``stack.json`` of ``root`` records (and what they spawned), then forget them.

    Returns the pids that were still running; safe to call twice (the second finds nothing).
    """
    if not state_path(root).exists():
        return set()
    with locked(root):
        return _stop_recorded(root, timeout)


def _stop_recorded(root: Path, timeout: float) -> set[int]:
    state = read_state(root)
    if state is None:
        return set()
    stopped = terminate(state.processes, timeout)
    state_path(root).unlink(missing_ok=True)
    return stopped


def stop_stale(root: Path) -> None:
    """Stop what a previous, killed driver left running for this runtime folder.

    A leftover triggerer would otherwise keep claiming files from the same landing zone.
    """
    stop_recorded(root)


def reset(root: Path) -> None:
    """Stop what a previous run left behind and remove its runtime folder."""
    stop_stale(root)
    if root.exists():
        shutil.rmtree(root)


@dataclass
class Stack:
    """Running services; ``stop()`` ends them and everything they spawned."""

    config: StackConfig
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, timeout: float = 300.0, detached: bool = False) -> Stack:
        """Start MLflow and Airflow, record them in ``stack.json``, wait until both are healthy.

        ``detached``: the services belong to no driver (``stack up``); otherwise this process
        is their driver and a later start treats them as leftovers once it is gone. Raises
        ``AlreadyRunning`` when a live stack is recorded for the runtime folder, and a
        ``RuntimeError`` naming the port when one is taken. On failure, stops what it started.
        """
        cfg = self.config
        with locked(cfg.root):
            previous = read_state(cfg.root)
            if previous is not None and previous.running():
                raise AlreadyRunning(previous)
            _stop_recorded(cfg.root, 30.0)  # leftovers of a killed driver or a crashed service
            check_ports(cfg)
            for folder in (cfg.airflow_home, cfg.root / "mlflow", cfg.logs, cfg.airflow_home / "plugins"):
                folder.mkdir(parents=True, exist_ok=True)
            env = cfg.environment()
            # Free ports for the log servers of the scheduler and triggerer (8793/8794 by default),
            # so that two stacks on one machine do not collide.
            for var in ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"):
                env.setdefault(var, str(free_port(cfg.host)))
            mlflow_cmd = [
                "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{cfg.root / 'mlflow' / 'mlflow.db'}",
                "--artifacts-destination", str(cfg.root / "mlflow" / "artifacts"),
                "--host", cfg.host, "--port", str(cfg.mlflow_port), "--workers", "1",
            ]  # fmt: skip
            spawn_error: BaseException | None = None
            try:
                self._spawn("mlflow", mlflow_cmd, env)
                self._spawn("airflow", ["airflow", "standalone"], env)
            except BaseException as exc:  # e.g. `airflow` not found: stop the one already started
                spawn_error = exc
            write_state(self._state(detached))  # before waiting: a killed `up` leaves nothing unknown
        try:
            if spawn_error is not None:
                raise spawn_error
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _state(self, detached: bool) -> StackState:
        return StackState(
            config=self.config,
            processes=[ProcessRecord.of(name, proc.pid) for name, proc in self.processes.items()],
            detached=detached,
            driver=None if detached else ProcessRecord.of("driver", os.getpid()),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.config.logs / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.processes[name] = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.config.root, start_new_session=True,
            )  # fmt: skip

    def wait_healthy(self, timeout: float) -> None:
        cfg = self.config
        deadline = time.monotonic() + timeout
        pending = {"mlflow", "airflow"}
        while pending and time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {cfg.logs / (name + '.log')}")
            for name in list(pending):
                if health(cfg)[name][0]:
                    pending.discard(name)
            if pending:
                time.sleep(2)
        if pending:
            raise TimeoutError(f"not healthy after {timeout:.0f}s: {sorted(pending)}; logs in {cfg.logs}")

    def admin_password(self) -> str:
        password = admin_password(self.config)
        if password is None:
            raise RuntimeError(f"Airflow has not written its admin password to {password_file(self.config)} yet")
        return password

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the services this object started (process groups, SIGKILL after ``timeout``) and reap them."""
        if not self.processes:
            return  # started nothing (a refused start): leave whatever runs alone
        stop_recorded(self.config.root, timeout)
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.processes.clear()


def check_ports(cfg: StackConfig) -> None:
    """Fail, naming the port and its option, when something else listens on a port of the stack."""
    if cfg.airflow_port == cfg.mlflow_port:
        raise RuntimeError(f"--airflow-port and --mlflow-port are both {cfg.airflow_port}; pick two ports")
    for port, option in ((cfg.airflow_port, "--airflow-port"), (cfg.mlflow_port, "--mlflow-port")):
        if port_open(cfg.host, port):
            raise RuntimeError(
                f"port {port} on {cfg.host} is already in use by another program; stop what holds it "
                f"or pick another port with {option}"
            )


def password_file(cfg: StackConfig) -> Path:
    return cfg.airflow_home / "simple_auth_manager_passwords.json.generated"


def admin_password(cfg: StackConfig) -> str | None:
    """The password ``airflow standalone`` generated for user ``admin`` (None before its first start)."""
    try:
        return str(json.loads(password_file(cfg).read_text())["admin"])
    except (OSError, ValueError, KeyError):
        return None


def health(cfg: StackConfig) -> dict[str, tuple[bool, str]]:
    """(healthy, detail) of MLflow (``/health``) and Airflow (``/api/v2/monitor/health``)."""
    out: dict[str, tuple[bool, str]] = {}
    try:
        response = httpx.get(f"{cfg.mlflow_url}/health", timeout=5)
        out["mlflow"] = (response.status_code == 200, f"HTTP {response.status_code}")
    except httpx.HTTPError as exc:
        out["mlflow"] = (False, f"no answer ({type(exc).__name__})")
    try:
        response = httpx.get(f"{cfg.airflow_url}/api/v2/monitor/health", timeout=5)
    except httpx.HTTPError as exc:
        out["airflow"] = (False, f"no answer ({type(exc).__name__})")
        return out
    if response.status_code != 200:
        out["airflow"] = (False, f"HTTP {response.status_code}")
        return out
    body = response.json()
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    states = {p: (body.get(p) or {}).get("status") or "unknown" for p in parts}
    unhealthy = {p: s for p, s in states.items() if s != "healthy"}
    out["airflow"] = (not unhealthy, ", ".join(f"{p} {s}" for p, s in (unhealthy or states).items()))
    return out
