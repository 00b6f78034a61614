"""Extra links: buttons on a task instance in the Airflow UI that open what the task made.

Each link is built from the task's own result (its ``return_value`` XCom: the references of
``core.contracts``, such as MLflow run ids and model versions) and the MLflow UI of the task's
``mlflow`` connection (``MlflowHook.ui_url``: ``extra.ui_url``, else an http(s) tracking URI,
never with credentials). Airflow 3.3 asks for a link once, in the worker, when the task ends
(the task runner's ``finalize`` calls ``get_link`` of each class in ``operator_extra_links``
and stores the URL in XCom under ``xcom_key``); the api-server only reads that XCom back (the
serialized DAG keeps link name -> XCom key), so the links need no plugin registration to show.

A link with nothing to open is the empty string, which the UI shows disabled: the task failed
or skipped (no result), the store has no UI (an ``sqlite://`` tracking URI), or a report lies
at a ``file://`` or ``s3://`` location a browser cannot open; the validate task's report then
opens through the plugin's report route (``/mlops/files/...``, docs/ui.md), and the drift report
and the copy of the validation report on the training run are MLflow artifacts, linked there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

# Where core.model.release logs the validate task's report on the training run.
VALIDATION_ARTIFACT = "validation/report.json"
DRIFT_ARTIFACT = "drift_report.html"  # the monitoring run's HTML report (core.operations.stages)


def _task_result(ti_key: TaskInstanceKey) -> Any:
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=BaseXCom.XCOM_RETURN_KEY)


def mlflow_ui(operator: BaseOperator) -> str | None:
    """The MLflow UI of the operator's ``mlflow_conn_id``, or None (no connection, no UI)."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    conn_id = getattr(operator, "mlflow_conn_id", None)
    if not conn_id:
        return None
    return MlflowHook(mlflow_conn_id=conn_id).ui_url()


def web_url(uri: object) -> str | None:
    """``uri`` when a browser can open it (http or https), else None."""
    return uri if isinstance(uri, str) and uri.startswith(("http://", "https://")) else None


def plugin_file_url(operator: BaseOperator, uri: str) -> str | None:
    """``uri`` through the plugin's report route (``/mlops/files/<pipeline>/...``, behind the Airflow
    login) when it is a report that route serves (``ui.quality_view.servable_path``), else None."""
    from airflow_mlops import layout

    load_spec = getattr(operator, "load_spec", None)
    if load_spec is None:
        return None
    pipeline = load_spec().name
    root = layout.join(layout.artifact_root(), pipeline) + "/"
    relative = uri[len(root) :] if uri.startswith(root) else ""
    if not relative or not layout.is_report_path(relative):
        return None
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    base = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return f"{base}/mlops/files/{quote(pipeline)}/{quote(relative)}"


def run_url(ui: str, run_id: str, experiment_id: object = None, artifact: str | None = None) -> str:
    """The MLflow UI page of a run (``#/runs/<id>`` redirects to it when the experiment is unknown)."""
    if not experiment_id:
        return f"{ui}/#/runs/{quote(run_id, safe='')}"
    page = f"{ui}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(run_id, safe='')}"
    return f"{page}/artifactPath/{quote(artifact)}" if artifact else page


def model_version_url(ui: str, name: str, version: object) -> str:
    return f"{ui}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def training_run(operator: BaseOperator, result: object) -> tuple[str | None, object]:
    """(run id, experiment id) of the MLflow run a task logged or worked on, from its result or,
    for the tasks that judge the selected candidate, from the rendered ``training`` parameter."""
    if isinstance(result, list) and result:  # the plan task: the trials, each naming the parent run
        first = _mapping(result[0])
        return first.get("parent_run_id"), first.get("experiment_id")
    found = _mapping(result)
    if found.get("run_id"):  # train, select, a trial
        return str(found["run_id"]), found.get("experiment_id")
    if found.get("mlflow_run_id"):  # the drift check and its event: the monitoring run
        return str(found["mlflow_run_id"]), None
    training = _mapping(getattr(operator, "training", None))  # evaluate, package, register
    if training.get("run_id"):
        return str(training["run_id"]), training.get("experiment_id")
    trial = _mapping(getattr(operator, "trial", None))  # a trial that failed: its parent run
    if trial.get("parent_run_id"):
        return str(trial["parent_run_id"]), trial.get("experiment_id")
    trials = getattr(operator, "trials", None)  # close_run
    if isinstance(trials, list) and trials:
        return _mapping(trials[0]).get("parent_run_id"), _mapping(trials[0]).get("experiment_id")
    return None, None


class _ResultLink(BaseOperatorLink):
    """A link computed from the task's result; the empty string when there is nothing to open.

    ``without_result``: the link may still be built from the task's rendered parameters when the
    task returned nothing (failed or skipped): a failed trial or evaluation still has its MLflow run.
    """

    without_result = False

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            result = _task_result(ti_key)
            if result is None and not self.without_result:
                return ""
            return self.url(operator, result) or ""
        except Exception as exc:  # a link must never fail the task: the button is then disabled
            log.warning("no '%s' link for %s: %s", self.name, ti_key.task_id, exc)
            return ""

    def url(self, operator: BaseOperator, result: Any) -> str | None:
        raise NotImplementedError


class MlflowRunLink(_ResultLink):
    """The MLflow run of a training, trial or monitoring task."""

    name = "MLflow run"
    without_result = True

    def url(self, operator: BaseOperator, result: Any) -> str | None:
        run_id, experiment_id = training_run(operator, result)
        ui = mlflow_ui(operator) if run_id else None
        return run_url(ui, run_id, experiment_id) if ui and run_id else None


class ModelVersionLink(_ResultLink):
    """The registered model version a register, gate, promote or rollback task is about."""

    name = "MLflow model version"

    def url(self, operator: BaseOperator, result: Any) -> str | None:
        found = _mapping(result)
        version = found.get("version") or found.get("to_version")  # register, gate | promote, rollback
        model = found.get("name") or found.get("model") or _mapping(getattr(operator, "gate", None)).get("name")
        if not model and version:  # a promotion record names no model: the spec's
            load_spec = getattr(operator, "load_spec", None)
            model = load_spec().registered_model_name if load_spec else None
        ui = mlflow_ui(operator) if model and version else None
        return model_version_url(ui, str(model), version) if ui and model and version else None


class ValidationReportLink(_ResultLink):
    """The validation report: on the validate task when its report is at an http(s) URL; on the
    register task, the copy logged on the training run (``validation/report.json``)."""

    name = "Validation report"

    def url(self, operator: BaseOperator, result: Any) -> str | None:
        found = _mapping(result)
        if "report_uri" in found:  # the validate task
            return web_url(found["report_uri"]) or plugin_file_url(operator, str(found["report_uri"]))
        if getattr(operator, "validation", None) is None:
            return None
        run_id, experiment_id = training_run(operator, None)
        ui = mlflow_ui(operator) if run_id else None
        return run_url(ui, run_id, experiment_id, VALIDATION_ARTIFACT) if ui and run_id else None


class DriftReportLink(_ResultLink):
    """The drift report of a monitoring run: the HTML report if it is at an http(s) URL, else the
    copy logged on the monitoring MLflow run (its experiment looked up in MLflow)."""

    name = "Drift report"

    def url(self, operator: BaseOperator, result: Any) -> str | None:
        found = _mapping(result)
        direct = web_url(found.get("html_report_uri"))
        run_id = found.get("mlflow_run_id")
        if direct or not run_id:
            return direct
        ui = mlflow_ui(operator)
        if not ui:
            return None
        from airflow_mlops.hooks.mlflow import MlflowHook

        hook = MlflowHook(mlflow_conn_id=operator.mlflow_conn_id)  # type: ignore[attr-defined]
        experiment_id = hook.get_conn().client.get_run(str(run_id)).info.experiment_id
        return run_url(ui, str(run_id), experiment_id, DRIFT_ARTIFACT)
