"""The native production stack's configuration and its record on disk.

``ProductionConfig`` says where the stack lives and what it reaches; once started, its
``endpoints`` say where each compose service runs on this machine. ``production.json``
(``ProductionState``) records the processes, endpoints and options so that ``stack down
--production`` undoes a stack a killed ``up`` left behind; the secrets generated for the
compose file's required variables live only in ``secrets.env`` (mode 0600).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops import layout
from airflow_mlops.devstack import compose_env
from airflow_mlops.devstack import production_env as native
from airflow_mlops.devstack.processes import ProcessRecord

STATE_FILE = "production.json"
SECRETS_FILE = "secrets.env"
AIRFLOW_ROLES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
WORKER = "airflow-worker"


@dataclass
class ProductionConfig:
    """Where the native production stack lives and what it reaches on this machine."""

    root: Path
    compose_file: Path = compose_env.COMPOSE_FILE
    dags_folder: Path = compose_env.REPO_ROOT / "dags"
    pipelines_folder: Path = compose_env.REPO_ROOT / "include" / "pipelines"
    workers: int = 2
    serve: bool = True
    host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_admin: str = "postgres"  # a superuser of the local PostgreSQL (trust auth)
    redis_port: int = 6379
    ports: dict[str, int] = field(default_factory=dict)  # service -> port; free ports by default
    extra_env: dict[str, str] = field(default_factory=dict)  # added to every Airflow role (e.g. timeouts)
    variables: dict[str, str] = field(default_factory=dict)  # compose variables; generated when missing
    endpoints: native.Endpoints | None = None  # set by ProductionStack.start

    @property
    def airflow_port(self) -> int:
        return self._ready().airflow_port

    @property
    def mlflow_port(self) -> int:
        return self._ready().mlflow_port

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self._ready().s3_port}"

    @property
    def serving_url(self) -> str:
        return f"http://{self.host}:{self._ready().serving_port}"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def _ready(self) -> native.Endpoints:
        if self.endpoints is None:
            raise RuntimeError("the production stack has not been started")
        return self.endpoints

    def role_dirs(self, role: str) -> native.RoleDirs:
        return native.RoleDirs(self.root / "roles" / role)

    def folders(self) -> native.Folders:
        return native.Folders(dags=self.dags_folder, pipelines=self.pipelines_folder)

    def services(self) -> dict[str, compose_env.Service]:
        return compose_env.load(self.variables, self.compose_file)

    def client_environment(self) -> dict[str, str]:
        """What a process of the user's (a test, an uploader) needs to reach the stack's S3 and roots."""
        worker = self.services()[WORKER]
        keep = ("AWS_", "AIRFLOW_MLOPS_LANDING", "AIRFLOW_MLOPS_ARTIFACT", "MLFLOW_TRACKING_URI")
        env = native.role_environment(worker, self._ready(), self.folders(), self.role_dirs("client"), "client", {})
        out = {k: v for k, v in env.items() if k.startswith(keep)}
        out[layout.HOME_ENV] = str(self.root / "roles" / "client")
        out[layout.PIPELINES_ENV] = str(self.pipelines_folder)
        return out

    def mlops_env(self) -> dict[str, str]:  # what DemoLoop puts into its own process
        return self.client_environment()

    def environment(self) -> dict[str, str]:
        """The serving role's environment (DemoLoop starts its own serving app with it)."""
        return self.role_environment("serving", "serving")

    def role_environment(self, service: str, role: str) -> dict[str, str]:
        dirs = self.role_dirs(role)
        extra = self.extra_env if service.startswith("airflow-") else {}
        return native.role_environment(self.services()[service], self._ready(), self.folders(), dirs, role, extra)


@dataclass
class ProductionState:
    """What ``production.json`` records: enough for ``down`` to undo everything ``up`` did."""

    root: str
    processes: list[dict[str, Any]]
    endpoints: dict[str, Any]
    started_at: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[ProcessRecord]:
        return [ProcessRecord.from_json(p) for p in self.processes]


def read_state(root: Path) -> ProductionState | None:
    """The stack recorded in ``root``; None when nothing is; RuntimeError naming the file when unreadable."""
    path = root / STATE_FILE
    try:
        return ProductionState(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise RuntimeError(
            f"cannot read {path}: {exc}; stop the processes it names by hand, drop its databases and delete it"
        ) from exc


def from_environment(names: set[str] | dict[str, str]) -> dict[str, str]:
    """The compose variables set in this process's environment (they win over generated ones)."""
    return {name: os.environ[name] for name in names if os.environ.get(name)}


def write_secrets(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in sorted(values.items()))


def read_secrets(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)
