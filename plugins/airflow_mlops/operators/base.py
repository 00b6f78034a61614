"""What every airflow-mlops operator shares: the spec path, MLflow, lineage, events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops import __version__

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.spec import PipelineSpec

ResultT = TypeVar("ResultT")  # a task result of core.contracts


class MlopsBaseOperator(BaseOperator):
    """Base of the pipeline operators.

    :param spec_path: path of the pipeline's YAML spec, loaded at task time. (templated)
    :param mlflow_conn_id: Airflow connection of type ``mlflow``.
    """

    template_fields: Sequence[str] = ("spec_path",)
    ui_color = "#e8f4fd"

    def __init__(self, *, spec_path: str, mlflow_conn_id: str = "mlflow_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.mlflow_conn_id = mlflow_conn_id

    def load_spec(self) -> PipelineSpec:
        """Load the spec and point S3 access at the right connection.

        ``AIRFLOW_MLOPS_AWS_CONN_ID`` names the connection for s3:// roots (landing, artifacts);
        a spec's ``data.source.conn_id`` takes precedence for its own source.
        """
        import os

        from airflow_mlops.layout import AWS_CONN_ENV
        from airflow_mlops.spec import load_spec

        spec = load_spec(self.spec_path)
        conn_id = spec.data.source.conn_id or os.environ.get(AWS_CONN_ENV)
        if conn_id:
            from airflow_mlops.hooks.aws import configure_s3_from_connection

            configure_s3_from_connection(conn_id)
        return spec

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        from airflow_mlops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @staticmethod
    def run_id(context: Context) -> str:
        return str(context["run_id"])

    @staticmethod
    def lineage(context: Context) -> dict[str, str]:
        """Who produced an artifact: tagged on MLflow runs and model versions."""
        return {
            "dag_id": context["dag"].dag_id,
            "run_id": str(context["run_id"]),
            "task_id": context["task"].task_id,
            "code_version": __version__,
        }


def acknowledge_claims(context: Context, *, skip_duplicates: bool = False, pipeline: str | None = None) -> list[str]:
    """Take the landing claims behind this run; return the URIs this run must process.

    The run's triggering Asset events may hold several claims (events are merged into one
    run) and the same claim more than once (a redelivery). Each claim is acknowledged for
    this DAG (``core.landing.inbox.acknowledge``): the first run of the DAG to take it owns it,
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
    claims: dict[str, dict[str, Any]] = {}
    every_claim: list[dict[str, Any]] = []  # duplicates included: each one is checked
    uris: list[str] = []
    other_events = 0
    for asset_events in (context.get("triggering_asset_events") or {}).values():
        for event in asset_events:
            payload = (event.extra or {}).get("payload") or {}
            if not isinstance(payload, dict):
                other_events += 1
            elif payload.get("claim_id") and payload.get("claim_uri"):
                claims.setdefault(str(payload["claim_id"]), payload)
                every_claim.append(payload)
            elif payload.get("claimed"):
                uris.extend(_claimed_list(payload))
            else:
                other_events += 1
    if not claims and not uris:
        return uris
    lake = _pipeline_lake(context, pipeline)
    if lake is None:
        if claims:
            raise AirflowFailException(
                "cannot check this run's landing claims: no pipeline (call acknowledge_claims from an "
                "airflow-mlops operator, or pass pipeline=)"
            )
    else:
        for uri in uris:
            _check_in_lake(uri, lake)
        for payload in every_claim:
            _check_claim(str(payload["claim_id"]), payload, lake)
    if not claims:
        return uris
    from airflow_mlops.core.landing.inbox import acknowledge

    dag_id, run_id = context["dag"].dag_id, str(context["run_id"])
    task = context.get("task")
    owner = {"dag_id": dag_id, "run_id": run_id, "task_id": task.task_id if task is not None else ""}
    duplicates = []
    for claim_id, payload in sorted(claims.items()):
        holder = acknowledge(payload["claim_uri"], owner)
        if (holder.get("dag_id"), holder.get("run_id")) == (dag_id, run_id):
            uris.extend(_claimed_list(payload))
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


def _relative_parts(uri: str, root: str) -> list[str] | None:
    """The segments of ``uri`` below ``root``; None when it is not below it or has '.', '..' or ''."""
    prefix = root.rstrip("/") + "/"
    if not uri.startswith(prefix):
        return None
    parts = uri[len(prefix) :].split("/")
    return None if any(part in ("", ".", "..") for part in parts) else parts


def _claimed_list(payload: dict[str, Any]) -> list[str]:
    claimed = payload.get("claimed") or []
    if not isinstance(claimed, list) or not all(isinstance(uri, str) for uri in claimed):
        raise AirflowFailException(f"landing event payload with a 'claimed' that is not a list of URIs: {claimed!r}")
    return claimed


def _check_in_lake(uri: str, lake: str) -> None:
    parts = _relative_parts(uri, lake)
    if not parts or parts[0].startswith(("_", ".")):
        raise AirflowFailException(f"refusing claimed URI {uri!r}: not a file of the pipeline's lake {lake}")


def _check_claim(claim_id: str, payload: dict[str, Any], lake: str) -> None:
    """A claim folder is ``<lake>/_claims/<lake folder>/<claim id>``; its files are in the lake."""
    from airflow_mlops.core.landing.inbox import CLAIMS

    uri = str(payload["claim_uri"])
    parts = _relative_parts(uri, f"{lake.rstrip('/')}/{CLAIMS}")
    if not parts or len(parts) != 2 or parts[1] != claim_id or any(p.startswith(("_", ".")) for p in parts):
        raise AirflowFailException(
            f"refusing landing claim {claim_id!r}: claim_uri {uri!r} is not a claim folder of the pipeline's "
            f"lake ({lake}/{CLAIMS}/<lake folder>/<claim id>)"
        )
    for claimed in _claimed_list(payload):
        _check_in_lake(claimed, lake)


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
    except NothingToProcessError as exc:
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
