"""The extra links: built from the task's result and the MLflow connection's UI, never with
credentials; empty when there is nothing a browser can open; kept by the DAG serialization the
api-server reads."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.operators import links
from airflow_mlops.operators.data import ValidateDataOperator
from airflow_mlops.operators.model import EvaluateModelOperator, PlanTrialsOperator, RunTrialOperator
from airflow_mlops.operators.operations import DriftCheckOperator
from airflow_mlops.operators.release import PromoteModelOperator, RegisterModelOperator
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit

UI = "https://mlflow.example.com"
KEY = SimpleNamespace(dag_id="churn_training", task_id="t", run_id="r", map_index=-1)
COMMON = {"spec_path": str(EXAMPLE_SPEC), "mlflow_conn_id": "mlflow_links"}


@pytest.fixture
def result(monkeypatch):
    """Set the task's result (its return_value XCom) and an MLflow connection with credentials."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_LINKS",
        json.dumps({"conn_type": "mlflow", "host": "https://alice:s3cret@mlflow.example.com", "password": "pw"}),
    )
    found: dict[str, Any] = {"value": None}
    monkeypatch.setattr(links, "_task_result", lambda ti_key: found["value"])

    def set_result(value: Any) -> None:
        found["value"] = value

    return set_result


def _link(operator: Any, name: str) -> str:
    (link,) = [link for link in operator.operator_extra_links if link.name == name]
    return str(link.get_link(operator, ti_key=KEY))


def test_a_trial_links_its_mlflow_run_without_the_connections_credentials(result):
    result({"run_id": "child1", "experiment_id": "7", "parent_run_id": "p"})
    trial = RunTrialOperator(task_id="trial", trial={}, split={}, **COMMON)
    url = _link(trial, "MLflow run")
    assert url == f"{UI}/#/experiments/7/runs/child1"
    assert "alice" not in url and "s3cret" not in url and "pw" not in url


def test_the_plan_links_the_parent_run_its_trials_name(result):
    result([{"parent_run_id": "parent1", "experiment_id": "7", "label": "a"}])
    plan = PlanTrialsOperator(task_id="plan", dataset={}, split={}, **COMMON)
    assert _link(plan, "MLflow run") == f"{UI}/#/experiments/7/runs/parent1"


def test_a_failed_evaluation_still_links_the_run_it_judged(result):
    result(None)  # the task failed: no result
    evaluate = EvaluateModelOperator(task_id="evaluate", training={"run_id": "p2", "experiment_id": "3"},
                                     test_uri="/x", **COMMON)  # fmt: skip
    assert _link(evaluate, "MLflow run") == f"{UI}/#/experiments/3/runs/p2"


def test_register_links_the_version_and_the_validation_report_logged_on_the_run(result):
    result({"name": "churn_model", "version": "4"})
    register = RegisterModelOperator(
        task_id="register", training={"run_id": "p3", "experiment_id": "3"}, evaluation={}, dataset={}, split={},
        validation={"report_uri": "file:///lake/report.json"}, **COMMON,
    )  # fmt: skip
    assert _link(register, "MLflow model version") == f"{UI}/#/models/churn_model/versions/4"
    assert _link(register, "Validation report") == (
        f"{UI}/#/experiments/3/runs/p3/artifactPath/{links.VALIDATION_ARTIFACT}"
    )


def test_the_validation_artifact_is_where_register_logs_it():
    from airflow_mlops.core.model.release import VALIDATION_ARTIFACT

    assert links.VALIDATION_ARTIFACT == VALIDATION_ARTIFACT


def test_promote_links_the_version_it_made_champion(result):
    result({"from_version": "1", "to_version": "2", "at": "t", "by": "b", "reason": "r", "id": "x"})
    promote = PromoteModelOperator(task_id="promote", gate={"name": "churn model", "version": "2"}, **COMMON)
    assert _link(promote, "MLflow model version") == f"{UI}/#/models/churn%20model/versions/2"


def test_a_report_in_the_artifact_root_opens_through_the_plugin_one_over_http_directly(result, monkeypatch):
    from airflow_mlops import layout

    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", "s3://bucket/mlops")
    validate = ValidateDataOperator(task_id="validate", dataset={}, **COMMON)
    pipeline = validate.load_spec().name
    result({"report_uri": layout.join("s3://bucket/mlops", pipeline, "runs/manual__1/validate/report.json")})
    assert _link(validate, "Validation report") == f"/mlops/files/{pipeline}/runs/manual__1/validate/report.json"
    result({"report_uri": "s3://elsewhere/churn/runs/r/validate/report.json"})  # not a report the route serves
    assert _link(validate, "Validation report") == ""
    result({"report_uri": "https://reports.example.com/r/validate/report.json"})
    assert _link(validate, "Validation report") == "https://reports.example.com/r/validate/report.json"


def test_the_drift_check_links_its_monitoring_run_and_the_report_logged_there(result, monkeypatch):
    from airflow_mlops.hooks.mlflow import MlflowHook

    result({"mlflow_run_id": "mon1", "html_report_uri": "file:///a/report.html"})
    run = SimpleNamespace(info=SimpleNamespace(experiment_id="9"))
    registry = SimpleNamespace(client=SimpleNamespace(get_run=lambda run_id: run if run_id == "mon1" else None))
    monkeypatch.setattr(MlflowHook, "get_conn", lambda self: registry)
    check = DriftCheckOperator(task_id="drift_check", **COMMON)
    assert _link(check, "MLflow run") == f"{UI}/#/runs/mon1"
    assert _link(check, "Drift report") == f"{UI}/#/experiments/9/runs/mon1/artifactPath/{links.DRIFT_ARTIFACT}"


def test_no_link_without_a_result_or_an_mlflow_ui(result, monkeypatch):
    check = DriftCheckOperator(task_id="drift_check", **COMMON)
    result(None)  # failed or skipped
    assert _link(check, "Drift report") == "" and _link(check, "MLflow run") == ""
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_LINKS", json.dumps({"conn_type": "mlflow", "host": "sqlite:////m.db"}))
    result({"run_id": "c", "experiment_id": "1"})
    assert _link(RunTrialOperator(task_id="trial", trial={}, split={}, **COMMON), "MLflow run") == ""


def test_a_link_that_cannot_be_built_is_empty_and_does_not_raise(result, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_LINKS", json.dumps({"conn_type": "mlflow"}))  # no host
    result({"run_id": "c", "experiment_id": "1"})
    assert _link(RunTrialOperator(task_id="trial", trial={}, split={}, **COMMON), "MLflow run") == ""


def test_the_serialized_dag_keeps_each_tasks_links_for_the_api_server(mlops_home):
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_mlops.factories.training import build_training_dag

    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_training_dag(EXAMPLE_SPEC)))
    assert dag.get_task("data.validate").extra_links == ["Validation report"]
    assert dag.get_task("model.trial").extra_links == ["MLflow run"]
    assert dag.get_task("model.register").extra_links == ["MLflow model version", "MLflow run", "Validation report"]
    link = dag.get_task("model.promote").operator_extra_link_dict["MLflow model version"]
    assert link.xcom_key == "_link_ModelVersionLink"  # where the worker stores the URL at the end of the task
