"""What every airflow-mlops operator shares: the spec path, MLflow, lineage, events."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_mlops import __version__

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_mlops.core.io.s3 import Stores
    from airflow_mlops.core.model.outcome import Outcome
    from airflow_mlops.core.registry.client import Registry
    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.spec import PipelineSpec

ResultT = TypeVar("ResultT")  # a task result of core.contracts


class MlopsBaseOperator(BaseOperator):
    """Base of the pipeline operators.

    Every subclass's ``execute`` runs with the task's S3 stores current (``s3_stores``, made
    current by ``core.io.s3.using`` and built on the first ``s3://`` access, so a task that
    touches no S3 looks no connection up) and with library noise kept out of its log
    (``operators.task_logs``); the core stages get the MLflow ``registry()``. A skip logs its
    reason, a failure a summary line (``FAILED at <task>: ...``) above Airflow's traceback, and
    both are recorded for the DAG run's note (``record_outcome``, ``notifiers.run_notes``).

    :param spec_path: path of the pipeline's YAML spec, loaded at task time. (templated)
    :param mlflow_conn_id: Airflow connection of type ``mlflow``.
    """

    template_fields: Sequence[str] = ("spec_path",)
    ui_color = "#e8f4fd"

    def __init__(self, *, spec_path: str, mlflow_conn_id: str = "mlflow_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.mlflow_conn_id = mlflow_conn_id

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if execute is not None:
            cls.execute = _wrapped_execute(execute)  # type: ignore[method-assign]

    def load_spec(self) -> PipelineSpec:
        """The pipeline's spec (``spec_path``), loaded at task time."""
        from airflow_mlops.spec import load_spec

        return load_spec(self.spec_path)

    def s3_stores(self) -> Stores:
        """Which Airflow connection serves which ``s3://`` URI in this task.

        ``AIRFLOW_MLOPS_AWS_CONN_ID`` serves the artifact and landing roots and every URI not
        named below (without it: boto3's own chain). The spec's ``data.source.conn_id`` serves
        only the spec's source files (``data.source.uri`` and the ``data.enrich`` tables): it is
        never the credential of the artifact root.
        """
        import os

        from airflow_mlops import layout
        from airflow_mlops.core.io.s3 import S3Store, Stores, route_prefix
        from airflow_mlops.hooks.aws import s3_store_from_connection

        roots_conn = os.environ.get(layout.AWS_CONN_ENV)
        roots = s3_store_from_connection(roots_conn) if roots_conn else None
        routes: dict[str, S3Store | None] = {}
        spec = self.load_spec()
        source = spec.data.source
        sources = [
            uri for uri in (source.uri, *(table.uri for table in spec.data.enrich)) if uri and uri.startswith("s3://")
        ]
        if source.conn_id and sources:
            store = roots if source.conn_id == roots_conn else s3_store_from_connection(source.conn_id)
            routes.update((route_prefix(uri), store) for uri in sources)
        for root in (layout.artifact_root(), layout.landing_root()):
            if routes and root.startswith("s3://"):  # a root inside a source's prefix stays the roots'
                routes[root.rstrip("/") + "/"] = roots
        return Stores(roots, routes)

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        from airflow_mlops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def registry(self) -> Registry:
        """The MLflow ``Registry`` of ``mlflow_conn_id`` (``MlflowHook.get_conn``), handed to the core stages.

        From here on MLflow's own stderr output goes through the task's logging (``task_logs``).
        """
        from airflow_mlops.operators.task_logs import route_mlflow_output

        route_mlflow_output()
        return self.mlflow_hook.get_conn()

    @staticmethod
    def run_id(context: Context) -> str:
        return str(context["run_id"])

    @staticmethod
    def lineage(context: Context) -> dict[str, str]:
        """Who produced an artifact: tagged on MLflow runs and model versions.

        With ``triggered_by`` (the user who triggered the run) and ``reason`` (the trigger
        form's reason, else a retrain message's or a code change's) when the run has them, and
        ``trigger`` (``message``/``code_change``), ``message_id``, ``message_by``, ``code_change``
        (``<champion's fingerprint> -> <new>``) from ``operators.run_triggers``.
        """
        lineage = {
            "dag_id": context["dag"].dag_id,
            "run_id": str(context["run_id"]),
            "task_id": context["task"].task_id,
            "code_version": __version__,
        }
        from airflow_mlops.operators.run_triggers import run_requests

        requests = run_requests(context)  # a retrain message's or a code change's reason and tags
        user, reason = triggering_user(context), run_option(context, "reason") or requests.reason
        if user:
            lineage["triggered_by"] = user
        if reason:
            lineage["reason"] = str(reason)[:500]
        lineage.update(requests.tags)
        return lineage

    def record_outcome(self, context: Context, outcome: Outcome) -> None:
        """Record what this task decided for the DAG run's note (XCom ``OUTCOME_KEY``).

        Never fails the task: without a task instance (a test's context) nothing is recorded.
        """
        from airflow_mlops.core.model.outcome import OUTCOME_KEY

        ti = context.get("ti")
        if ti is None:
            return
        try:
            ti.xcom_push(key=OUTCOME_KEY, value=dict(outcome))
        except Exception:  # the note is a courtesy; the task's own result matters more
            self.log.warning("could not record the run outcome %s", outcome, exc_info=True)


def run_option(context: Context, name: str, default: Any = None) -> Any:
    """A run option: the run's conf (the trigger form's fields, a REST ``conf``), else the DAG's Param.

    The training DAG declares ``force_retrain`` and ``reason`` as Params, so its trigger form
    shows them; a DAG of your own without them reads the same keys from the conf.
    """
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    if name in conf:
        return conf[name]
    params = context.get("params") or {}
    return params.get(name, default) if hasattr(params, "get") else default


def triggering_user(context: Context) -> str | None:
    """Who triggered the run (Airflow 3's ``dag_run.triggering_user_name``); None for a scheduled
    or asset-triggered run."""
    return getattr(context.get("dag_run"), "triggering_user_name", None) or None


def requested_by(context: Context) -> str:
    """The ``by`` of a registry move: the DAG run, and the user who triggered it if any."""
    run = f"{context['dag'].dag_id}/{context['run_id']}"
    user = triggering_user(context)
    return f"{user} via {run}" if user else run


def _wrapped_execute(execute: Callable[..., Any]) -> Callable[..., Any]:
    """``execute`` with library noise filtered (``task_logs.quiet_libraries``), inside
    ``core.io.s3.using(operator.s3_stores)`` (the stores end with the call), its skip or failure
    logged and recorded for the run's note (the outermost call only: a subclass's ``execute``
    calling its parent's reports once)."""

    @functools.wraps(execute)
    def run(self: MlopsBaseOperator, context: Context, *args: Any, **kwargs: Any) -> Any:
        from airflow_mlops.core.io import s3
        from airflow_mlops.operators.task_logs import quiet_libraries

        if getattr(self, "_mlops_in_execute", False):
            return execute(self, context, *args, **kwargs)
        self._mlops_in_execute = True
        try:
            with quiet_libraries(), s3.using(self.s3_stores):
                return execute(self, context, *args, **kwargs)
        except AirflowSkipException as exc:
            _report_skip(self, context, exc)
            raise
        except Exception as exc:
            _report_failure(self, context, exc)
            raise
        finally:
            self._mlops_in_execute = False

    return run


def _report_skip(operator: MlopsBaseOperator, context: Context, exc: AirflowSkipException) -> None:
    """Log the reason (Airflow's own line says "Skipping task." only) and record it for the note."""
    from airflow_mlops.core.model import outcome

    reason = str(exc.args[0]) if exc.args else "no reason given"
    operator.log.info("SKIPPED: %s", reason)
    note = getattr(exc.__cause__, "note", None)  # a NothingToProcessError's short form
    operator.record_outcome(context, outcome.skipped(note or reason, operator.task_id))


def _report_failure(operator: MlopsBaseOperator, context: Context, exc: BaseException) -> None:
    """A few readable lines above Airflow's traceback: the summary, then the message's first lines."""
    from airflow_mlops.core.model import outcome

    message = str(exc) or type(exc).__name__
    if not isinstance(exc, AirflowException | ValueError):  # an infrastructure fault: its type says what
        message = f"{type(exc).__name__}: {message}"
    ti = context.get("ti")
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    retrying = (
        not isinstance(exc, AirflowFailException)
        and isinstance(try_number, int)
        and isinstance(max_tries, int)
        and try_number <= max_tries
    )
    head = f"attempt {try_number} failed at {operator.task_id} (will retry)" if retrying else (
        f"FAILED at {operator.task_id}")  # fmt: skip
    lines = [line for line in message.splitlines() if line.strip()]
    detail = "".join(f"\n  {line.strip()}" for line in lines[1:6]) + ("\n  ..." if len(lines) > 6 else "")
    operator.log.error("%s: %s%s", head, lines[0].strip() if lines else message, detail)
    operator.record_outcome(context, outcome.failed(operator.task_id, message))


def acknowledge_claims(context: Context, *, skip_duplicates: bool = False, pipeline: str | None = None) -> list[str]:
    """Take the landing claims behind this run; return the URIs this run must process.

    The run's triggering Asset events may hold several claims (events are merged into one
    run) and the same claim more than once (a redelivery). Each claim is acknowledged for
    this DAG (``core.landing.delivery.acknowledge``): the first run of the DAG to take it owns it,
    and a retry or clear of that run processes it again; a claim another run of this DAG
    already took is left out, so no file is processed twice. Payloads without a claim
    (older events) are passed through unchanged.

    Event payloads are checked first (anyone allowed to create asset events through the
    REST API can write one): a ``claim_uri`` must be a claim folder of the pipeline's lake
    (``<lake>/_claims/<lake folder>/<claim id>``) and every ``claimed`` URI must be in the
    pipeline's lake, else the task fails (``AirflowFailException``) naming the URI.

    :param skip_duplicates: raise ``AirflowSkipException`` when the run was triggered by
        claims only and every one was already taken by another run (a redelivery).
    :param pipeline: the pipeline whose lake the claims must be in; by default the
        pipeline of the running operator's spec (``context["task"].load_spec()``).
    """
    from airflow_mlops.core.landing.events import EventPayloadError, check_in_lake, sort_payloads

    payloads = [
        (event.extra or {}).get("payload") or {}
        for asset_events in (context.get("triggering_asset_events") or {}).values()
        for event in asset_events
    ]
    try:
        found = sort_payloads(payloads)
        if not found.claims and not found.uris:
            return found.uris
        lake = _pipeline_lake(context, pipeline)
        if lake is None and found.claims:
            raise AirflowFailException(
                "cannot check this run's landing claims: no pipeline (call acknowledge_claims from an "
                "airflow-mlops operator, or pass pipeline=)"
            )
        if lake is not None:
            check_in_lake(found, lake)
    except EventPayloadError as exc:
        raise AirflowFailException(str(exc)) from None
    claims, uris, other_events = found.claims, found.uris, found.other_events
    if not claims:
        return uris
    from airflow_mlops.core.landing.delivery import acknowledge
    from airflow_mlops.core.landing.events import claimed_list

    dag_id, run_id = context["dag"].dag_id, str(context["run_id"])
    task = context.get("task")
    owner = {"dag_id": dag_id, "run_id": run_id, "task_id": task.task_id if task is not None else ""}
    duplicates = []
    for claim_id, payload in sorted(claims.items()):
        holder = acknowledge(payload["claim_uri"], owner)
        if (holder.get("dag_id"), holder.get("run_id")) == (dag_id, run_id):
            uris.extend(claimed_list(payload))
        else:
            duplicates.append(f"{claim_id} (taken by run {holder.get('run_id')})")
    if duplicates:
        import logging

        logging.getLogger(__name__).warning("claims already processed by another run, skipped: %s", duplicates)
        if skip_duplicates and not uris and not other_events:
            raise AirflowSkipException(f"every claim of this run was already taken by another run: {duplicates}")
    return uris


def claimed_uris_from_events(context: Context, *, pipeline: str | None = None) -> list[str]:
    """URIs that landing-zone triggers claimed for this run, each claim taken exactly once."""
    return acknowledge_claims(context, pipeline=pipeline)


def _pipeline_lake(context: Context, pipeline: str | None) -> str | None:
    """``<artifact root>/<pipeline>/lake``: the pipeline given, or the running operator's spec's."""
    if pipeline is None:
        load_spec = getattr(context.get("task"), "load_spec", None)
        if load_spec is None:
            return None
        pipeline = str(load_spec().name)
    from airflow_mlops.layout import lake_dir

    return lake_dir(pipeline, "")


@contextmanager
def fail_without_retry_on_bad_input() -> Iterator[None]:
    """Bad data or a bad spec (the core raises ``ValueError``s for both: ``IngestError``,
    ``DataValidationError``, a split that leaves test empty, invalid estimator params) does not
    get better on a retry: the task fails at once (``AirflowFailException``). Anything else (a
    lost connection, a store outage, a killed worker) keeps the task's ``retries``."""
    try:
        yield
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc


@contextmanager
def skip_when_nothing_to_process() -> Iterator[None]:
    """Turn the core's NothingToProcessError into a skip with the same message."""
    from airflow_mlops.core.errors import NothingToProcessError

    try:
        yield
    except NothingToProcessError as exc:  # the operator's execute logs the reason and records it
        raise AirflowSkipException(str(exc)) from exc


def upstream_result(value: ResultT | XComArg | str, name: str) -> ResultT:
    """A parameter that holds another task's result, at task time.

    The factories pass ``other_task.output`` (an XComArg), which Airflow resolves to that
    task's return value before ``execute``; anything else (a Jinja template that rendered to
    text, an XComArg used outside a task run) is refused, naming the parameter.
    """
    if not isinstance(value, dict | list):
        raise TypeError(
            f"parameter '{name}' rendered to {type(value).__name__}, expected an upstream task's result: "
            "pass that task's .output (an XComArg)"
        )
    return cast("ResultT", value)
