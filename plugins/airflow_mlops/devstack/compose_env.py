"""docker-compose.yml as data: the production shape's services, their environment and commands.

The native production stack (``devstack.production``) starts the same roles from this file,
so CI cannot drift from it. Only what compose itself does is done here: YAML anchors and
merge keys (``yaml.safe_load``), and variable interpolation of every string value with
compose's rules - ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
``${VAR?message}`` and ``$$`` for a literal ``$``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` of the compose file has no value in the environment given."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with compose's variable syntax replaced from ``env`` (raises MissingVariable)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset_or_empty = not value
        if op in (":-", "-"):
            return arg if (value is None or (op == ":-" and unset_or_empty)) else str(value)
        if op in (":?", "?"):
            if value is None or (op == ":?" and unset_or_empty):
                raise MissingVariable(f"{name} is required by docker-compose.yml: {arg or 'no value'}")
            return str(value)
        return "" if value is None else str(value)

    return _VARIABLE.sub(replace, text)


def required_variables(path: Path = COMPOSE_FILE) -> dict[str, str]:
    """Every ``${VAR:?message}`` of the file: variable -> the longest message given for it."""
    found: dict[str, str] = {}
    for match in _VARIABLE.finditer(path.read_text()):
        if match.group("name") and (match.group("op") or "").endswith("?"):
            message = match.group("arg") or ""
            if len(message) > len(found.get(match.group("name"), "")):
                found[match.group("name")] = message
            found.setdefault(match.group("name"), message)
    return found


def referenced_variables(path: Path = COMPOSE_FILE) -> set[str]:
    """Every variable the file interpolates (required or with a default)."""
    return {m.group("name") for m in _VARIABLE.finditer(path.read_text()) if m.group("name")}


def _interpolated(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [_interpolated(item, env) for item in value]
    if isinstance(value, dict):
        return {key: _interpolated(item, env) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Service:
    """One service of the compose file, interpolated."""

    name: str
    environment: dict[str, str]
    entrypoint: list[str]
    command: list[str]
    volumes: list[str]
    inherits_airflow: bool

    @property
    def argv(self) -> list[str]:
        """Entrypoint + command, as the container would run them (Airflow's image runs ``airflow``)."""
        if self.entrypoint:
            return [*self.entrypoint, *self.command]
        if self.inherits_airflow:
            if self.command[:2] == ["bash", "-c"]:
                return self.command
            return ["airflow", *self.command]
        return self.command


def _words(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value]
    return shlex.split(str(value))


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, list):  # ["KEY=value", ...]
        return dict(item.split("=", 1) for item in value)
    return {str(k): "" if v is None else str(v) for k, v in (value or {}).items()}


def load(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict[str, Service]:
    """The services of ``path`` with their values interpolated from ``env``."""
    raw = yaml.safe_load(path.read_text())
    common_image = (raw.get("x-airflow-common") or {}).get("image")
    services: dict[str, Service] = {}
    for name, body in (raw.get("services") or {}).items():
        body = _interpolated(body, env)
        services[name] = Service(
            name=name,
            environment=_environment(body.get("environment")),
            entrypoint=_words(body.get("entrypoint")),
            command=_words(body.get("command")),
            volumes=[str(v) for v in body.get("volumes") or []],
            inherits_airflow=common_image is not None and body.get("image") == common_image,
        )
    return services


def buckets(service: Service) -> list[str]:
    """The buckets a ``mc mb ... local/<bucket>`` bucket-maker service creates."""
    return re.findall(r"local/([a-z0-9][a-z0-9.-]+)", " ".join(service.entrypoint + service.command))
