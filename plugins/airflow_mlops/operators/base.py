"""What every airflow-mlops operator shares: the spec path, MLflow, lineage, events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops import __version__

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops.core.spec import PipelineSpec
    from airflow_mlops.hooks.mlflow import MlflowHook


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

        from airflow_mlops.core.settings import AWS_CONN_ENV
        from airflow_mlops.core.spec import load_spec

        spec = load_spec(self.spec_path)
        conn_id = spec.data.source.conn_id or os.environ.get(AWS_CONN_ENV)
        if conn_id:
            from airflow_mlops.hooks.object_storage import configure_s3_from_connection

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


def claimed_uris_from_events(context: Context) -> list[str]:
    """URIs that landing-zone triggers claimed for the asset events behind this run."""
    uris: list[str] = []
    events = context.get("triggering_asset_events") or {}
    for asset_events in events.values():
        for event in asset_events:
            payload = (event.extra or {}).get("payload") or {}
            uris.extend(payload.get("claimed", []))
    return uris


@contextmanager
def skip_when_nothing_to_process() -> Iterator[None]:
    """Turn the core's NothingToProcessError into a skip with the same message."""
    from airflow_mlops.core.errors import NothingToProcessError

    try:
        yield
    except NothingToProcessError as exc:
        raise AirflowSkipException(str(exc)) from exc


def rendered_dict(value: Any, name: str) -> dict[str, Any]:
    """A templated parameter after rendering: it must be the upstream task's result dict."""
    if not isinstance(value, dict):
        raise TypeError(
            f"parameter '{name}' rendered to {type(value).__name__}, expected a dict (an upstream task's "
            "result); the DAG needs render_template_as_native_obj=True"
        )
    return value
