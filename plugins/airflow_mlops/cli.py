"""``airflow-mlops``: run the demo, draft a spec from a file, serve the champion, land data, check a spec
(or a pipeline repository before deploying), show or roll back the champion."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_mlops.core.registry.client import Registry


def _demo(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack.demo import run_demo

    return run_demo(Path(args.root).resolve(), args.keep_running, args.airflow_port, args.mlflow_port, args.rows)


def _validate_spec(args: argparse.Namespace) -> int:
    from airflow_mlops.spec import SpecError, load_spec

    status = 0
    for path in args.specs:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            print(exc, file=sys.stderr)
            status = 1
        else:
            print(f"{path}: OK (pipeline '{spec.name}', spec hash {spec.fingerprint()})")
    return status


def _init(args: argparse.Namespace) -> int:
    from airflow_mlops.core.drafting.draft import DraftError, draft_from_file, write_draft

    try:
        draft = draft_from_file(args.file, args.label, args.task, args.name, args.profile_rows, args.read_file)
        written = write_draft(draft, args.output_dir, force=args.force)
    except DraftError as exc:
        print(f"init: {exc}", file=sys.stderr)
        return 2
    print("\n".join(draft.summary(written)))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from airflow_mlops import layout
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.spec import load_spec

    spec = load_spec(args.spec)
    directory = args.output or layout.landing_dir(spec.name, args.kind)
    landed = synthetic.land_batch(
        spec.data.generator or spec.name,
        directory,
        dt.date.fromisoformat(args.date),
        args.rows,
        seed=args.seed,
        drift=args.drift,
        include_label=not args.no_label,
        label=spec.data.label,
    )
    print(f"wrote {landed.rows} rows to {landed.uri}")
    return 0


def _registry(args: argparse.Namespace) -> Registry:
    """The ``Registry`` of ``_tracking_uri``."""
    from airflow_mlops.core.registry.client import Registry

    return Registry(_tracking_uri(args))


def _tracking_uri(args: argparse.Namespace) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the Airflow connection (like the DAGs)."""
    import os

    if args.tracking_uri:
        return str(args.tracking_uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    from airflow_mlops.hooks.mlflow import MlflowHook

    return MlflowHook(mlflow_conn_id=args.conn_id).tracking_uri


def _rollback(args: argparse.Namespace) -> int:
    import getpass

    from airflow_mlops.core.registry import promotion
    from airflow_mlops.spec import load_spec

    spec = load_spec(args.spec)
    try:
        record = promotion.rollback(
            _registry(args),
            spec.registered_model_name,
            by=f"cli/{getpass.getuser()}",
            reason=args.reason,
            to_version=args.to,
            force=args.force,
        )
    except promotion.RollbackError as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 1
    print(f"champion of {spec.registered_model_name}: v{record['from_version']} -> v{record['to_version']} "
          f"({record['reason']}, {record['at']})")  # fmt: skip
    for why in record.get("forced_past", []):
        print(f"  forced past: {why}")
    return _tell_airflow(args, spec.name, spec.registered_model_name, dict(record))


AIRFLOW_URL_ENV = "AIRFLOW_MLOPS_AIRFLOW_URL"
AIRFLOW_TOKEN_ENV = "AIRFLOW_MLOPS_AIRFLOW_TOKEN"  # a JWT; else the username and password below log in
AIRFLOW_USERNAME_ENV = "AIRFLOW_MLOPS_AIRFLOW_USERNAME"
AIRFLOW_PASSWORD_ENV = "AIRFLOW_MLOPS_AIRFLOW_PASSWORD"


def _tell_airflow(args: argparse.Namespace, pipeline: str, model: str, record: dict[str, object]) -> int:
    """Send the champion Asset event through the api-server (``ui.champion_events``), when one is named.

    0 when sent or when no api-server is named (said on stderr); 3 when the alias moved but
    Airflow refused or could not be reached: what listens to the champion asset was not told.
    """
    import os

    url = args.airflow_url or os.environ.get(AIRFLOW_URL_ENV)
    if not url:
        print(f"note: Airflow was not told (no --airflow-url or ${AIRFLOW_URL_ENV}): DAGs scheduled on the "
              f"champion asset of '{pipeline}' do not run for this move", file=sys.stderr)  # fmt: skip
        return 0
    from airflow_mlops.core.redaction import describe_error
    from airflow_mlops.devstack.rest import AirflowClient
    from airflow_mlops.ui.champion_events import post_champion_event

    try:
        client = AirflowClient(
            url,
            os.environ.get(AIRFLOW_USERNAME_ENV, ""),
            os.environ.get(AIRFLOW_PASSWORD_ENV, ""),
            token=os.environ.get(AIRFLOW_TOKEN_ENV) or None,
        )
        event = post_champion_event(client, pipeline, model, record)
    except Exception as exc:
        import json

        from airflow_mlops.ui.champion_events import champion_asset_name, champion_event_extra

        print(f"the champion moved, but Airflow at {url} was not told: {describe_error(exc)}. Create the event "
              f"of asset '{champion_asset_name(pipeline)}' by hand (Airflow UI: Assets) with this extra: "
              f"{json.dumps(champion_event_extra(model, record))}", file=sys.stderr)  # fmt: skip
        return 3
    print(f"champion asset event {event.get('id')} sent to Airflow at {url}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from airflow_mlops.core.registry import promotion
    from airflow_mlops.spec import load_spec

    spec = load_spec(args.spec)
    registry = _registry(args)
    current = registry.champion(spec.registered_model_name)
    print(f"champion of {spec.registered_model_name}: {'v' + str(current.version) if current else 'none'}")
    for record in registry.promotion_history(spec.registered_model_name):
        print(f"  {record['at']}  v{record['from_version']} -> v{record['to_version']}  by {record['by']}: "
              f"{record['reason'][:120]}")  # fmt: skip
    drift = promotion.alias_drift(registry, spec.registered_model_name)
    if drift:  # the next move records it (``promotion.record_manual_move``)
        print(f"  moved outside airflow-mlops: the alias is on v{drift['alias_version']}, the newest record "
              f"says v{drift['history_version']} (moved after {drift['since'] or 'the start'})")  # fmt: skip
    pending = promotion.pending_move(registry, spec.registered_model_name)
    if pending:  # the next move (or the retry of its task) records or drops it
        print(f"  unfinished: v{pending['from_version']} -> v{pending['to_version']} by {pending['by']} "
              f"at {pending['at']} (its task died before recording it)")  # fmt: skip
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from airflow_mlops.serving.config import CONFIG_ENV, ServeConfig, tokens_from_env
    from airflow_mlops.spec import SpecError, load_spec

    try:
        load_spec(args.spec)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    config = ServeConfig(
        spec_path=str(Path(args.spec).resolve()),
        tracking_uri=_tracking_uri(args),
        poll_seconds=args.poll_seconds,
        max_rows=args.max_rows,
        log_predictions=not args.no_prediction_log,
        log_flush_rows=args.log_flush_rows,
        log_flush_seconds=args.log_flush_seconds,
        onnx_threads=args.onnx_threads,
        require_token=not args.no_auth,
        freeze_gc=True,
        tokens=tokens_from_env(),
    )
    from airflow_mlops.serving.connections import LIMITS_ENV, PROTOCOL, ConnectionLimits

    limits = ConnectionLimits(args.header_timeout, args.body_timeout, args.max_header_bytes)
    try:
        config.check()
        limits.check()
        if args.limit_concurrency < 1 or args.backlog < 1 or args.keep_alive_timeout < 1:
            raise ValueError("--limit-concurrency, --backlog and --keep-alive-timeout must be >= 1")
    except (RuntimeError, ValueError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    _raise_open_files_limit(args.limit_concurrency + 256)
    import uvicorn

    from airflow_mlops.core.redaction import install_record_factory
    from airflow_mlops.serving.config import secret_values

    install_record_factory(secret_values(config))  # this process's records too (uvicorn's, a factory error)
    os.environ[CONFIG_ENV] = config.to_env()  # the workers build their app from it (tokens stay in the env)
    os.environ[LIMITS_ENV] = limits.to_env()  # ... and their connections' limits
    uvicorn.run(
        "airflow_mlops.serving.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=PROTOCOL,  # httptools, with head/body deadlines and a head size limit
        lifespan="on",
        access_log=False,
        limit_concurrency=args.limit_concurrency,
        backlog=args.backlog,
        timeout_keep_alive=args.keep_alive_timeout,
        timeout_graceful_shutdown=args.graceful_timeout,
        log_level="info",
    )
    return 0


def _raise_open_files_limit(wanted: int) -> None:
    """Let the process hold ``wanted`` sockets when the hard limit allows it (a soft limit of 1024 is
    common: past it, accept() fails and new clients are refused while slow ones hold the sockets)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        print(f"serve: the open files limit is {hard}, below --limit-concurrency + 256 ({wanted}): "
              "raise it (ulimit -n) or lower --limit-concurrency", file=sys.stderr)  # fmt: skip


def _add_registry_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("spec", help="the pipeline's YAML spec (names the registered model)")
    command.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or --conn-id)")
    command.add_argument("--conn-id", default="mlflow_default", help="Airflow connection of type mlflow")


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options.

    Long on purpose: one flat list of the commands and their options, read top to bottom like ``--help``.
    """
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="start the embedded stack and drive the whole loop once")
    demo.add_argument("--root", default=".runtime", help="runtime folder (wiped at start)")
    demo.add_argument("--keep-running", action="store_true", help="leave Airflow and MLflow up for browsing")
    demo.add_argument("--airflow-port", type=int, default=8080)
    demo.add_argument("--mlflow-port", type=int, default=5000)
    demo.add_argument("--rows", type=int, default=5000, help="rows per landed batch")
    demo.set_defaults(func=_demo)

    check = sub.add_parser("validate-spec", help="validate pipeline spec files")
    check.add_argument("specs", nargs="+")
    check.set_defaults(func=_validate_spec)

    init = sub.add_parser("init", help="profile a data file and draft a pipeline spec and its three DAG files")
    init.add_argument("file", help="a CSV, Parquet or JSON Lines file (local path or s3://)")
    init.add_argument("--label", required=True, help="the column to predict")
    init.add_argument("--task", choices=["classification", "regression"], help="default: inferred from the label")
    init.add_argument("--name", help="pipeline name (default: from the file name)")
    init.add_argument("--output-dir", default=".", help="project folder: writes include/pipelines/ and dags/ there")
    init.add_argument("--profile-rows", type=int, default=1_000_000, help="rows profiled (the rest only counted)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument(
        "--read-file",
        action="store_true",
        help="train on this file itself (data.source.uri) instead of the batches landed in the inbox",
    )
    init.set_defaults(func=_init)

    gen = sub.add_parser("generate", help="land a synthetic batch for a spec's use case")
    gen.add_argument("spec")
    gen.add_argument("--kind", choices=["training", "scoring"], default="training")
    gen.add_argument("--date", default=dt.date.today().isoformat())
    gen.add_argument("--rows", type=int, default=5000)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--drift", type=float, default=0.0, help="0 = reference distribution; 1 = strong shift")
    gen.add_argument("--no-label", action="store_true", help="leave the label column out")
    gen.add_argument("--output", help="folder to write to (default: the spec's landing inbox)")
    gen.set_defaults(func=_generate)

    serve = sub.add_parser(
        "serve",
        help="serve the champion over HTTP (ONNX Runtime, hot swap, prediction log)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_registry_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--poll-seconds", type=float, default=5.0, help="how often to check the champion alias")
    serve.add_argument("--max-rows", type=int, default=10_000, help="rows allowed per request")
    serve.add_argument("--onnx-threads", type=int, default=1, help="ONNX Runtime threads per worker")
    serve.add_argument("--log-flush-rows", type=int, default=100_000, help="write the prediction log every N rows")
    serve.add_argument("--log-flush-seconds", type=float, default=5.0, help="... or at least this often")
    serve.add_argument("--no-prediction-log", action="store_true", help="do not log predictions")
    serve.add_argument("--graceful-timeout", type=int, default=30, help="seconds to finish requests on shutdown")
    serve.add_argument(
        "--limit-concurrency", type=int, default=4096,
        help="connections (open or in flight) per worker; past it requests get 503",
    )  # fmt: skip
    serve.add_argument("--backlog", type=int, default=2048, help="connections waiting to be accepted")
    serve.add_argument("--keep-alive-timeout", type=int, default=5, help="seconds an idle keep-alive connection stays")
    serve.add_argument(
        "--header-timeout", type=float, default=10.0,
        help="seconds a request line and headers may take to arrive (else 408, closed)",
    )  # fmt: skip
    serve.add_argument(
        "--body-timeout", type=float, default=30.0,
        help="seconds a request body may take to arrive after its headers (else closed)",
    )  # fmt: skip
    serve.add_argument(
        "--max-header-bytes", type=int, default=64 * 1024, help="size of a request line and headers (else 431)"
    )
    serve.add_argument(
        "--no-auth", action="store_true", help="accept requests without a token (else $AIRFLOW_MLOPS_SERVE_TOKEN)"
    )
    serve.set_defaults(func=_serve)

    back = sub.add_parser(
        "rollback", help="undo the last champion move (or --to N); refuses versions that failed the gate or lack ONNX"
    )
    _add_registry_arguments(back)
    back.add_argument(
        "--to", help="version to restore (default: the one the last move replaced; a second rollback undoes the first)"
    )
    back.add_argument("--reason", default="manual rollback", help="recorded in the promotion history")
    back.add_argument(
        "--force",
        action="store_true",
        help="restore a version that failed its gate or has no parity-checked ONNX graph (recorded as forced)",
    )
    back.add_argument(
        "--airflow-url",
        help=f"the Airflow api-server to send the champion Asset event to (default ${AIRFLOW_URL_ENV}; login "
        f"from ${AIRFLOW_TOKEN_ENV}, else ${AIRFLOW_USERNAME_ENV} and ${AIRFLOW_PASSWORD_ENV})",
    )
    back.set_defaults(func=_rollback)

    history = sub.add_parser("history", help="show the champion and its promotion history")
    _add_registry_arguments(history)
    history.set_defaults(func=_history)

    from airflow_mlops.devstack.check import add_parser as add_check_parser
    from airflow_mlops.devstack.stack_cli import add_parser as add_stack_parser

    add_check_parser(sub)  # check: what a pipeline repository's CI runs before deploying DAGs
    add_stack_parser(sub)  # stack up | status | down
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
