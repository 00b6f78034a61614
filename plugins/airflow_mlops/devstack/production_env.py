"""docker-compose.yml's environment, mapped onto this machine for the native production stack.

What compose names by service host (``postgres:5432``, ``redis:6379/0``, ``minio:9000``,
``mlflow:5000``, ``airflow-apiserver:8080``) becomes 127.0.0.1 and the stack's own port,
database, Redis database number and database role; what it names by container path
(``/opt/airflow/dags``, ``/opt/airflow/include``, the ``mlops-data`` volume) becomes a
folder of this checkout or of the role's own private directory. Nothing else of the
file's environment is changed: the native overrides are listed in ``native_overrides``.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from airflow_mlops.devstack.compose_env import REPO_ROOT, Service

CONTAINER_HOME = "/opt/airflow"
HOSTNAME_CALLABLE = "airflow_mlops.devstack.hostname.native_hostname"
HOSTNAME_ENV = "AIRFLOW_MLOPS_HOSTNAME"
OBJECT_SCHEMES = ("s3", "s3a", "gs", "file")

# scheme://[user[:password]@]host[:port][/path]: the shape of every service address in the file.
_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<user>[^:@/\s\"']+)(?::(?P<password>[^@/\s\"']*))?@)?"
    r"(?P<host>[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?(?P<path>/[^\s\"',}]*)?"
)


def fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def generated_secrets(required: Mapping[str, str]) -> dict[str, str]:
    """A fresh value for each required variable of the compose file (a Fernet key where one is asked)."""
    out = {}
    for name in required:
        out[name] = fernet_key() if "FERNET" in name else secrets.token_urlsafe(24)
    return out


@dataclass
class Endpoints:
    """Where each compose service is reached on this machine, and the stack's own resources."""

    host: str
    postgres_port: int
    redis_port: int
    redis_db: int
    s3_port: int
    mlflow_port: int
    airflow_port: int
    serving_port: int
    databases: dict[str, str]  # compose database name -> this stack's database
    db_user: str
    db_password: str

    def service(self, name: str) -> tuple[str, int] | None:
        ports = {
            "postgres": self.postgres_port, "redis": self.redis_port, "minio": self.s3_port,
            "mlflow": self.mlflow_port, "airflow-apiserver": self.airflow_port, "serving": self.serving_port,
        }  # fmt: skip
        return (self.host, ports[name]) if name in ports else None


def map_urls(value: str, endpoints: Endpoints) -> str:
    """Every service address in ``value`` rewritten to this machine (other URLs untouched)."""

    def replace(match: re.Match[str]) -> str:
        target = endpoints.service(match.group("host"))
        if target is None or match.group("scheme") in OBJECT_SCHEMES:  # s3://mlflow/ is a bucket, not a host
            return match.group(0)
        scheme, path, user = match.group("scheme"), match.group("path") or "", match.group("user")
        userinfo = match.group(0)[len(scheme) + 3 : match.group(0).index("@") + 1] if user else ""
        if match.group("host") == "postgres":
            userinfo = f"{endpoints.db_user}:{endpoints.db_password}@"
            database = path.lstrip("/")
            if database not in endpoints.databases:
                known = sorted(endpoints.databases)
                raise ValueError(f"docker-compose.yml names database {database!r}; the stack maps only {known}")
            path = f"/{endpoints.databases[database]}"
        elif match.group("host") == "redis":
            path = f"/{endpoints.redis_db}"
        return f"{scheme}://{userinfo}{target[0]}:{target[1]}{path}"

    return _URL.sub(replace, value)


@dataclass
class Folders:
    """Container paths -> folders of this machine; a named volume is private to each role."""

    dags: Path = REPO_ROOT / "dags"
    include: Path = REPO_ROOT / "include"
    pipelines: Path = REPO_ROOT / "include" / "pipelines"
    extra: dict[str, Path] = field(default_factory=dict)

    def mounts(self, service: Service, role_dir: Path) -> list[tuple[str, Path]]:
        """(container path, local folder), longest container path first."""
        out: dict[str, Path] = {
            f"{CONTAINER_HOME}/dags": self.dags,
            f"{CONTAINER_HOME}/include": self.include,
            f"{CONTAINER_HOME}/include/pipelines": self.pipelines,
        }
        for volume in service.volumes:
            source, _, target = volume.partition(":")
            target = target.split(":")[0]
            if target in out:
                continue
            if source.startswith(("./", "/")):
                out[target] = (REPO_ROOT / source).resolve()
            else:  # a named volume: each role its own, nothing shared between processes
                out[target] = role_dir / source
        out.update(self.extra)
        return sorted(out.items(), key=lambda item: -len(item[0]))

    def map(self, value: str, mounts: list[tuple[str, Path]]) -> str:
        for container, local in mounts:
            if value == container or value.startswith(container + "/"):
                return str(local) + value[len(container) :]
        return value


@dataclass
class RoleDirs:
    """A role's own directories: nothing of one role is visible to another through the disk."""

    root: Path

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def create(self) -> None:
        for folder in (self.airflow_home / "plugins", self.home, self.tmp, self.work):
            folder.mkdir(parents=True, exist_ok=True)


def base_environment() -> dict[str, str]:
    """This process's environment without any Airflow, MLflow, AWS or airflow-mlops setting."""
    dropped = ("AIRFLOW", "AWS_", "MLFLOW_", "BOTO", "PYTEST", "GX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def native_overrides(dirs: RoleDirs, mounts: list[tuple[str, Path]], hostname: str) -> dict[str, str]:
    """What a container gets from its image and its own hostname, given natively to one role."""
    dags = Folders().map(f"{CONTAINER_HOME}/dags", mounts)
    return {
        "AIRFLOW_HOME": str(dirs.airflow_home),
        "HOME": str(dirs.home),
        "TMPDIR": str(dirs.tmp),
        "AIRFLOW__CORE__DAGS_FOLDER": dags,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(dirs.airflow_home / "plugins"),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
        HOSTNAME_ENV: hostname,
    }


def role_environment(
    service: Service,
    endpoints: Endpoints,
    folders: Folders,
    dirs: RoleDirs,
    hostname: str,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The environment one role of ``service`` runs with natively."""
    mounts = folders.mounts(service, dirs.root)
    env = base_environment()
    for key, value in service.environment.items():
        env[key] = folders.map(map_urls(value, endpoints), mounts)
    env.update(native_overrides(dirs, mounts, hostname))
    env.update(extra)
    return env


def role_argv(service: Service, endpoints: Endpoints, folders: Folders, dirs: RoleDirs) -> list[str]:
    """The service's command line natively: addresses and container paths mapped, bound to 127.0.0.1."""
    mounts = folders.mounts(service, dirs.root)
    argv = [folders.map(map_urls(word, endpoints), mounts) for word in service.argv]
    target = endpoints.service(service.name)
    for option, value in (("--host", endpoints.host), ("--port", str(target[1]) if target else None)):
        if option in argv and value is not None:
            argv[argv.index(option) + 1] = value
    if "--allowed-hosts" in argv and target:  # MLflow's DNS-rebinding guard: the native host names
        argv[argv.index("--allowed-hosts") + 1] = f"{endpoints.host},{endpoints.host}:{target[1]},localhost:{target[1]}"
    return argv
