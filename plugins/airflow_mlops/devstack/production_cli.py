"""``airflow-mlops stack up | status | down --production``: docker-compose.yml's shape, natively.

The roles of the compose file (api-server, scheduler, dag-processor, triggerer, Celery
workers, MLflow, the serving app) run as processes of this machine on its PostgreSQL and
Redis, with ``moto_server`` as S3 (``devstack.production``). Secrets the compose file requires
are taken from the environment when set, else generated, and kept in ``<root>/secrets.env``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(up: argparse.ArgumentParser) -> None:
    shape = "the production shape of docker-compose.yml (Celery workers, PostgreSQL, Redis, S3)"
    up.add_argument("--production", action="store_true", help=shape)
    up.add_argument("--workers", type=int, default=2, help="--production: Celery workers (default 2)")
    up.add_argument("--compose-file", default=None, help="--production: the compose file (default: the project's)")
    up.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="--production: an extra setting for every Airflow role, e.g. "
                         "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=60 (repeatable)")  # fmt: skip
    up.add_argument("--no-serving", action="store_true", help="--production: do not start the serving app")


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def up(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack import compose_env
    from airflow_mlops.devstack.production import ProductionStack
    from airflow_mlops.devstack.production_config import ProductionConfig, read_state

    root = Path(args.root).resolve()
    extra: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("AIRFLOW"):
            _err(f"stack up: --env {item!r} is not KEY=VALUE with an AIRFLOW... key")
            return 2
        extra[key] = value
    if args.workers < 1:
        _err("stack up: --workers must be at least 1")
        return 2
    try:
        recorded = read_state(root)
    except RuntimeError as exc:
        _err(f"stack up: {exc}")
        return 1
    if recorded is not None:
        _err(f"stack up: a production stack is recorded in {root}; `airflow-mlops stack down --production "
             f"--root {root}` first")  # fmt: skip
        return 1
    cfg = ProductionConfig(
        root=root, dags_folder=Path(args.dags_folder).resolve(), pipelines_folder=Path(args.pipelines_folder).resolve(),
        compose_file=Path(args.compose_file).resolve() if args.compose_file else compose_env.COMPOSE_FILE,
        workers=args.workers, serve=not args.no_serving, extra_env=extra,
    )  # fmt: skip
    print(f"starting the production shape of {cfg.compose_file} natively under {root} ...")
    try:
        stack = ProductionStack(cfg).start(timeout=args.timeout)
    except compose_env.MissingVariable as exc:
        _err(f"stack up: {exc}")
        return 2
    except Exception as exc:  # what failed is named; start() already undid what it began
        _err(f"stack up: {type(exc).__name__}: {exc}")
        return 1
    print("\n".join(describe(stack)))
    print(f"stop it with: airflow-mlops stack down --production --root {root}")
    return 0


def describe(stack: object) -> list[str]:
    from airflow_mlops import layout
    from airflow_mlops.devstack.production import ProductionStack
    from airflow_mlops.devstack.production_config import SECRETS_FILE

    assert isinstance(stack, ProductionStack)
    cfg = stack.config
    endpoints = cfg._ready()
    env = cfg.client_environment()
    lines = [
        f"  Airflow UI:   {cfg.airflow_url}   (user admin, password in "
        f"{cfg.role_dirs('airflow-apiserver').airflow_home / 'simple_auth_manager_passwords.json.generated'})",
        f"  MLflow UI:    {cfg.mlflow_url}",
        f"  S3 endpoint:  {cfg.s3_url}   (moto; keys and every other secret in {cfg.root / SECRETS_FILE})",
        f"  PostgreSQL:   databases {', '.join(endpoints.databases.values())} (role {endpoints.db_user})",
        f"  Redis:        database {endpoints.redis_db} on port {endpoints.redis_port}",
        f"  landing root: {env.get(layout.LANDING_ENV)}   artifact root: {env.get(layout.ARTIFACT_ENV)}",
        f"  logs:         {cfg.logs}/<role>.log; task logs in the S3 bucket",
    ]
    if cfg.serve:
        lines.append(f"  serving app:  {cfg.serving_url}   (bearer token AIRFLOW_MLOPS_SERVE_TOKEN in {SECRETS_FILE})")
    for name, running in stack.alive().items():
        lines.append(f"    {name:<22} {'running' if running else 'NOT RUNNING'}")
    return lines


def status(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack.production import ProductionStack

    root = Path(args.root).resolve()
    try:
        stack = ProductionStack.attach(root)
    except RuntimeError as exc:
        _err(f"stack status: {exc}")
        return 1
    if stack is None:
        print(f"no production stack recorded in {root}; start one with `airflow-mlops stack up --production`")
        return 1
    problems = stack.health() if all(stack.alive().values()) else {"processes": "not all running"}
    print(f"production stack of {root}:")
    print("\n".join(describe(stack)))
    for part, why in problems.items():
        print(f"  FAILING {part}: {why}")
    print("status: UP" if not problems else "status: NOT UP (see the lines above and the logs)")
    return 0 if not problems else 1


def down(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack.production import down as stop

    root = Path(args.root).resolve()
    try:
        stopped = stop(root, timeout=args.timeout)
    except Exception as exc:  # an unreadable record, PostgreSQL or Redis not answering: named, exit 1
        _err(f"stack down: {type(exc).__name__}: {exc}")
        return 1
    if not stopped:
        print(f"nothing to stop: no production stack recorded in {root}")
        return 0
    print(f"stopped the production stack of {root}: processes, its databases and role, its Redis database")
    return 0
