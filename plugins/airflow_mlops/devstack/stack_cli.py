"""``airflow-mlops stack up | status | down``: your own dags/ and pipeline specs on the embedded stack
(or, with ``--production``, on docker-compose.yml's shape run natively: ``devstack.production_cli``).

``up`` starts ``airflow standalone`` and an MLflow server (``devstack.stack``, the code the
demo uses) with the project's DAGs folder and pipeline specs, prints the URLs, the
login and the inboxes to copy files into, and returns while the services keep
running. ``status`` reports what runs and exits 1 when the stack is not up; ``down``
stops what ``up`` started and nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.devstack import install_check, processes, production_cli

if TYPE_CHECKING:
    from airflow_mlops.devstack.rest import AirflowClient
    from airflow_mlops.devstack.stack import StackConfig, StackState

KINDS = ("training", "scoring")
INBOX_HELP = {"training": "labeled files -> a training run", "scoring": "files to score -> a scoring run"}


def default_root() -> str:
    return os.environ.get("AIRFLOW_MLOPS_HOME") or ".runtime"


def add_parser(sub: Any) -> None:
    """Add ``stack up | status | down`` to the ``airflow-mlops`` parser."""
    stack = sub.add_parser("stack", help="run your dags/ and pipeline specs on the embedded Airflow + MLflow stack")
    commands = stack.add_subparsers(dest="stack_command", required=True)
    root_help = "runtime folder: databases, logs, inboxes (default: $AIRFLOW_MLOPS_HOME, else .runtime)"

    up = commands.add_parser("up", help="start Airflow standalone and MLflow in the background")
    up.add_argument("--root", default=default_root(), help=root_help)
    up.add_argument("--airflow-port", type=int, default=8080)
    up.add_argument("--mlflow-port", type=int, default=5000)
    up.add_argument("--dags-folder", default="dags", help="your DAG files (default: ./dags)")
    up.add_argument("--pipelines-folder", default="include/pipelines", help="your specs (default: ./include/pipelines)")
    up.add_argument("--restart", action="store_true", help="stop the running stack of --root first")
    up.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for both services to be healthy")
    up.add_argument("--wait-dags", type=float, default=120.0, help="seconds to wait for the DAG files to be parsed")
    production_cli.add_arguments(up)
    up.set_defaults(func=up_command)

    status = commands.add_parser("status", help="what runs, its health, DAGs and inboxes (exit 1 when not up)")
    status.add_argument("--root", default=default_root(), help=root_help)
    status.add_argument("--production", action="store_true", help="the native production stack of --root")
    status.set_defaults(func=status_command)

    down = commands.add_parser("down", help="stop everything `stack up` started (safe to run twice)")
    down.add_argument("--root", default=default_root(), help=root_help)
    down.add_argument("--timeout", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL")
    down.add_argument("--production", action="store_true", help="the native production stack of --root")
    down.set_defaults(func=down_command)


# -- what the project holds ----------------------------------------------------------------------
@dataclass
class Pipeline:
    """One spec file of the pipelines folder: its name, or why it cannot be used."""

    path: Path
    name: str | None = None
    error: str | None = None
    inboxes: dict[str, str] = field(default_factory=dict)


def discover(cfg: StackConfig) -> list[Pipeline]:
    """The specs of the pipelines folder and their inboxes, resolved as the stack's processes do."""
    from airflow_mlops import layout
    from airflow_mlops.spec import SpecError, load_spec

    out = []
    for path in sorted([*cfg.pipelines_folder.glob("*.yaml"), *cfg.pipelines_folder.glob("*.yml")]):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            out.append(Pipeline(path, error=str(exc)))
            continue
        with processes.environment(cfg.mlops_env()):
            inboxes = {kind: layout.landing_dir(spec.name, kind) for kind in KINDS}
        out.append(Pipeline(path, spec.name, inboxes=inboxes))
    return out


def dag_files(folder: Path) -> list[Path]:
    """Files the DAG processor parses: .py files mentioning both 'airflow' and 'dag' (its safe mode)."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        text = path.read_bytes().lower()
        if b"airflow" in text and b"dag" in text:
            out.append(path)
    return out


def _parsed(path: Path, reported: set[str]) -> bool:
    return any(str(path) == item or str(path).endswith("/" + item.lstrip("/")) for item in reported)


def airflow_view(client: AirflowClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return client.dags(), client.import_errors()


def wait_for_parse(client: AirflowClient, folder: Path, timeout: float) -> tuple[list[dict[str, Any]], list[Any]]:
    """Wait until every DAG file of ``folder`` gave a DAG or an import error (or ``timeout``)."""
    files = dag_files(folder)
    deadline = time.monotonic() + timeout
    while True:
        dags, errors = airflow_view(client)
        reported = {d["fileloc"] for d in dags} | {d.get("relative_fileloc") or "" for d in dags}
        reported |= {e["filename"] for e in errors}
        reported.discard("")
        if all(_parsed(p, reported) for p in files) or time.monotonic() > deadline:
            return dags, errors
        time.sleep(2)


# -- reporting -----------------------------------------------------------------------------------
def _login(cfg: StackConfig) -> AirflowClient | None:
    from airflow_mlops.devstack.rest import AirflowClient
    from airflow_mlops.devstack.stack import admin_password

    password = admin_password(cfg)
    if password is None:
        return None
    try:
        return AirflowClient(cfg.airflow_url, "admin", password)
    except Exception:  # Airflow not answering: the health lines say so
        return None


def describe(cfg: StackConfig, pipelines: list[Pipeline], view: tuple[list[Any], list[Any]] | None) -> list[str]:
    """URLs, login, folders, and per pipeline its DAGs (as Airflow sees them) and inboxes."""
    from airflow_mlops.devstack.stack import admin_password, password_file

    password = admin_password(cfg)
    login = f"user admin, password {password}" if password else "user admin, password not written yet"
    lines = [
        f"  Airflow UI:  {cfg.airflow_url}   ({login}; kept in {password_file(cfg)})",
        f"  MLflow UI:   {cfg.mlflow_url}",
        f"  DAGs folder: {cfg.dags_folder}",
        f"  pipelines:   {cfg.pipelines_folder}",
        f"  logs:        {cfg.logs}/airflow.log, {cfg.logs}/mlflow.log",
    ]
    dags, errors = view if view is not None else ([], [])
    if not pipelines:
        lines.append(f"no pipeline spec (*.yaml) in {cfg.pipelines_folder}: `airflow-mlops init <file> --label <col>`")
    for pipeline in pipelines:
        if pipeline.error is not None:
            lines.append(f"pipeline spec {pipeline.path}: NOT USABLE")
            lines.extend(f"    {line}" for line in pipeline.error.splitlines())
            continue
        lines.append(f"pipeline {pipeline.name} ({pipeline.path.name}):")
        if view is not None:
            seen = sorted(d["dag_id"] for d in dags if {"airflow-mlops", pipeline.name} <= _tags(d))
            shown = ", ".join(seen) if seen else f"none yet (is there a dags/{pipeline.name}_*.py?)"
            lines.append(f"    DAGs in Airflow: {shown}")
        for kind in KINDS:
            lines.append(f"    {kind} inbox ({INBOX_HELP[kind]}): {pipeline.inboxes[kind]}")
        lines.append(f"    serve its champion: AIRFLOW_MLOPS_HOME={cfg.root} AIRFLOW_MLOPS_SERVE_TOKEN=<token> "
                     f"airflow-mlops serve {pipeline.path} --tracking-uri {cfg.mlflow_url} --port 8000")  # fmt: skip
    for error in errors:
        last = (error.get("stack_trace") or "").strip().splitlines()[-1:] or ["(no message)"]
        lines.append(f"IMPORT ERROR in {error['filename']}: {last[0]}")
    return lines


def _tags(dag: dict[str, Any]) -> set[str]:
    return {t["name"] if isinstance(t, dict) else str(t) for t in dag.get("tags") or []}


def _project_config(args: argparse.Namespace) -> StackConfig:
    from airflow_mlops.devstack.stack import StackConfig

    plugins = Path("plugins").resolve()
    return StackConfig(
        root=Path(args.root).resolve(),
        dags_folder=Path(args.dags_folder).resolve(),
        pipelines_folder=Path(args.pipelines_folder).resolve(),
        plugins_folder=plugins if plugins.is_dir() else None,
        airflow_port=args.airflow_port,
        mlflow_port=args.mlflow_port,
    )


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _driven_by_demo(state: StackState) -> bool:
    from airflow_mlops.devstack.processes import alive

    return not state.detached and state.driver is not None and alive(state.driver)


# -- commands ------------------------------------------------------------------------------------
def up_command(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack.stack import AlreadyRunning, Stack, read_state, stop_recorded

    if args.production:
        return production_cli.up(args)
    cfg = _project_config(args)
    for folder, option in ((cfg.dags_folder, "--dags-folder"), (cfg.pipelines_folder, "--pipelines-folder")):
        if not folder.is_dir():
            _err(f"stack up: no folder {folder}; run `airflow-mlops init <file> --label <column>` in your project "
                 f"directory (it writes dags/ and include/pipelines/) or pass {option}")  # fmt: skip
            return 2
    state = read_state(cfg.root)
    if state is not None and state.running():
        if _driven_by_demo(state):
            _err(f"stack up: the demo (pid {state.driver.pid if state.driver else '?'}) runs a stack in {cfg.root} "
                 "and stops it when it ends; pass another --root")  # fmt: skip
            return 1
        if not args.restart:
            running = state.config
            print(f"the stack of {cfg.root} is already up (since {state.started_at}); --restart applies new options")
            print("\n".join(describe(running, discover(running), _view(running))))
            return 0
        print(f"restarting the stack of {cfg.root} ...")
        stop_recorded(cfg.root)
    pipelines = discover(cfg)
    install_check.warn(cfg)
    print(f"starting airflow standalone on :{cfg.airflow_port} and MLflow on :{cfg.mlflow_port} under {cfg.root} ...")
    try:
        Stack(cfg).start(timeout=args.timeout, detached=True)
    except AlreadyRunning as exc:  # another `up` won the race
        print(f"{exc}; nothing started")
        return 0
    except (RuntimeError, TimeoutError, OSError) as exc:
        _err(f"stack up: {exc}")
        return 1
    for pipeline in pipelines:
        for inbox in pipeline.inboxes.values():
            if "://" not in inbox:
                Path(inbox).mkdir(parents=True, exist_ok=True)  # so that `cp file <inbox>/` works
    client = _login(cfg)
    view = wait_for_parse(client, cfg.dags_folder, args.wait_dags) if client else None
    print(f"airflow-mlops stack is up (runtime folder {cfg.root}):")
    print("\n".join(describe(cfg, pipelines, view)))
    print("copy a file into an inbox to start a run; follow it in the Airflow UI (DAGs tagged airflow-mlops)")
    print(f"stop it with: airflow-mlops stack down --root {cfg.root}")
    return 0


def _view(cfg: StackConfig) -> tuple[list[Any], list[Any]] | None:
    client = _login(cfg)
    if client is None:
        return None
    try:
        return airflow_view(client)
    except Exception:
        return None


def status_command(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack.stack import health, read_state

    if args.production:
        return production_cli.status(args)
    root = Path(args.root).resolve()
    state = read_state(root)
    if state is None:
        print(f"no stack runs in {root} (nothing recorded in {root / 'stack.json'}); start one with "
              "`airflow-mlops stack up`")  # fmt: skip
        return 1
    cfg = state.config
    alive = state.alive()
    checks = health(cfg)
    print(f"stack of {root} (started {state.started_at}{', by the demo' if not state.detached else ''}):")
    for record in state.processes:
        ok, detail = checks.get(record.name, (False, ""))
        running = "running" if alive[record.name] else "NOT RUNNING"
        print(f"  {record.name:<8} pid {record.pid:<8} {running:<12} health: {'ok' if ok else 'FAILING'} ({detail})")
    if not state.detached and not _driven_by_demo(state):
        print("  the demo that drove it is gone: leftovers; `airflow-mlops stack down` stops them")
    up = state.running() and all(ok for ok, _ in checks.values())
    print("\n".join(describe(cfg, discover(cfg), _view(cfg) if checks["airflow"][0] else None)))
    print("status: UP" if up else "status: NOT UP (see the lines above and the logs)")
    return 0 if up else 1


def down_command(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack.processes import port_open
    from airflow_mlops.devstack.stack import read_state, stop_recorded

    if args.production:
        return production_cli.down(args)
    root = Path(args.root).resolve()
    state = read_state(root)
    if state is None:
        print(f"nothing to stop: no stack recorded in {root}")
        return 0
    if _driven_by_demo(state):
        _err(f"stack down: the demo (pid {state.driver.pid if state.driver else '?'}) drives the stack in {root}; "
             "stop the demo (Ctrl+C) instead")  # fmt: skip
        return 1
    stopped = stop_recorded(root, timeout=args.timeout)
    names = ", ".join(record.name for record in state.processes)
    if stopped:
        print(f"stopped {names} ({len(stopped)} processes) of {root}")
    else:
        print(f"{names} of {root} had already exited; record removed")
    cfg = state.config
    busy = [port for port in (cfg.airflow_port, cfg.mlflow_port) if port_open(cfg.host, port)]
    if busy:
        _err(f"stack down: port(s) {busy} still answer; something else holds them now")
        return 1
    return 0
