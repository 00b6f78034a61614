"""The embedded default deployment: ``airflow standalone`` plus an MLflow tracking server.

Everything lives under one runtime folder (gitignored ``.runtime/`` by default):
Airflow's home and SQLite database, MLflow's SQLite store and artifacts, the
landing zone, the artifact root and the service logs. Used by the demo and by the
integration tests; production uses docker-compose.yml instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class StackConfig:
    root: Path
    repo: Path = REPO_ROOT
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

    def environment(self) -> dict[str, str]:
        """The environment every Airflow and MLflow process of the stack runs with."""
        bin_dir = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.update(
            {
                "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.repo / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.repo / "plugins"),
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
                "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": self.mlflow_url}),
                "AIRFLOW_MLOPS_HOME": str(self.root),
                "AIRFLOW_MLOPS_PIPELINES_DIR": str(self.repo / "include" / "pipelines"),
                "MLFLOW_TRACKING_URI": self.mlflow_url,
                "GX_ANALYTICS_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env


@dataclass
class Stack:
    """Running services; ``stop()`` ends them and everything they spawned."""

    config: StackConfig
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, timeout: float = 300.0) -> Stack:
        cfg = self.config
        stop_stale(cfg.root)
        for sub in ("airflow", "mlflow", "logs"):
            (cfg.root / sub).mkdir(parents=True, exist_ok=True)
        for port in (cfg.airflow_port, cfg.mlflow_port):
            if _port_open(cfg.host, port):
                raise RuntimeError(
                    f"port {port} on {cfg.host} is already in use; stop what holds it or pick "
                    "another port (--airflow-port / --mlflow-port)"
                )
        env = cfg.environment()
        mlflow_cmd = [
            "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{cfg.root / 'mlflow' / 'mlflow.db'}",
            "--artifacts-destination", str(cfg.root / "mlflow" / "artifacts"),
            "--host", cfg.host, "--port", str(cfg.mlflow_port), "--workers", "1",
        ]  # fmt: skip
        self._spawn("mlflow", mlflow_cmd, env)
        self._spawn("airflow", ["airflow", "standalone"], env)
        # Remember the process groups: if this driver is killed, the next start stops them.
        _pid_file(cfg.root).write_text(json.dumps([proc.pid for proc in self.processes.values()]))
        try:
            self.wait_healthy(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.config.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.processes[name] = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.config.root, start_new_session=True
        )

    def wait_healthy(self, timeout: float) -> None:
        cfg = self.config
        deadline = time.monotonic() + timeout
        pending = {
            "mlflow": f"{cfg.mlflow_url}/health",
            "airflow": f"{cfg.airflow_url}/api/v2/monitor/health",
        }
        while pending and time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {cfg.root}/logs/{name}.log")
            for name, url in list(pending.items()):
                if _healthy(name, url):
                    del pending[name]
            time.sleep(2)
        if pending:
            raise TimeoutError(f"not healthy after {timeout:.0f}s: {sorted(pending)}; logs in {cfg.root}/logs")

    def admin_password(self) -> str:
        generated = self.config.airflow_home / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(generated.read_text())["admin"])

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()
        _pid_file(self.config.root).unlink(missing_ok=True)


def _pid_file(root: Path) -> Path:
    return root / "stack.pids"


def stop_stale(root: Path) -> None:
    """Stop process groups a previous, killed driver left running for this runtime folder.

    A leftover triggerer would otherwise keep claiming files from the same landing zone.
    """
    pid_file = _pid_file(root)
    if not pid_file.exists():
        return
    for pgid in json.loads(pid_file.read_text()):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            time.sleep(3)
    pid_file.unlink()


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _healthy(name: str, url: str) -> bool:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    if name != "airflow":
        return True
    body = response.json()
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((body.get(p) or {}).get("status") == "healthy" for p in parts)


def reset(root: Path) -> None:
    """Stop what a previous run left behind and remove its runtime folder."""
    stop_stale(root)
    if root.exists():
        shutil.rmtree(root)
