"""How the factories wire their tasks: the DAG shapes stay as they were recorded, and results
travel as XComArgs (``task.output``), never as ``xcom_pull`` Jinja strings.

``dag_shapes.json`` was recorded from the factories as they were when they passed task ids in
``{{ ti.xcom_pull(...) }}`` templates: the XComArg wiring must not add, drop or move an edge,
a group, an outlet or a trigger rule.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_SPEC, REPO

pytestmark = pytest.mark.unit

SHAPES = Path(__file__).with_name("dag_shapes.json")
APPROVAL = "  min_improvement: 0.0\n  require_approval: true\n  approval_timeout_hours: 24\n"


def _shape(dag: Any) -> dict[str, dict[str, Any]]:
    return {
        task.task_id: {
            "upstream": sorted(task.upstream_task_ids),
            "downstream": sorted(task.downstream_task_ids),
            "group": task.task_group.group_id if task.task_group else None,
            "outlets": sorted(asset.name for asset in task.outlets),
            "trigger_rule": str(task.trigger_rule),
            "type": type(task).__name__,
            "mapped": bool(getattr(task, "is_mapped", False)),
        }
        for task in dag.tasks
    }


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example DAGs of dags/, and the churn training DAG with ``promotion.require_approval``."""
    import os

    home = tmp_path_factory.mktemp("home")
    before = os.environ.get("AIRFLOW_MLOPS_HOME")
    os.environ["AIRFLOW_MLOPS_HOME"] = str(home)
    try:
        from airflow_mlops.factories.training import build_training_dag

        built = {}
        for path in sorted((REPO / "dags").glob("*.py")):
            dag = runpy.run_path(str(path))["dag"]
            built[dag.dag_id] = dag
        spec_path = home / "churn.yaml"
        text = EXAMPLE_SPEC.read_text()
        assert "  min_improvement: 0.0\n" in text
        spec_path.write_text(text.replace("  min_improvement: 0.0\n", APPROVAL))
        built["churn_training+approval"] = build_training_dag(spec_path)
    finally:
        if before is None:
            os.environ.pop("AIRFLOW_MLOPS_HOME", None)
        else:
            os.environ["AIRFLOW_MLOPS_HOME"] = before
    return built


def test_every_dag_keeps_its_recorded_shape(dags):
    recorded = json.loads(SHAPES.read_text())
    assert sorted(dags) == sorted(recorded)
    for dag_id, dag in dags.items():
        assert _shape(dag) == recorded[dag_id], dag_id


def _templated_values(task: Any) -> dict[str, Any]:
    """A task's templated arguments by name (a mapped task's partial and expanded ones too)."""
    if getattr(task, "is_mapped", False):
        fields = {k: v for k, v in task.partial_kwargs.items() if k in task.template_fields}
        return {**fields, **task.expand_input.value}
    return {name: getattr(task, name) for name in task.template_fields}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple | set):
        return [s for v in value for s in _strings(v)]
    return []


def test_no_templated_field_pulls_an_xcom_by_task_id(dags):
    for dag_id, dag in dags.items():
        assert not dag.render_template_as_native_obj, dag_id  # nothing relies on native rendering
        for task in dag.tasks:
            for name, value in _templated_values(task).items():
                assert not [s for s in _strings(value) if "xcom_pull" in s], (dag_id, task.task_id, name)


# (task, parameter) -> the task whose result it takes: every result is handed over as an XComArg.
TRAINING_WIRING = {
    ("data.validate", "dataset"): "data.ingest",
    ("data.split", "dataset"): "data.ingest",
    ("model.plan", "dataset"): "data.ingest",
    ("model.plan", "split"): "data.split",
    ("model.trial", "split"): "data.split",
    ("model.trial", "trial"): "model.plan",
    ("model.select", "results"): "model.trial",
    ("model.select", "dataset"): "data.ingest",
    ("model.select", "split"): "data.split",
    ("model.evaluate", "training"): "model.select",
    ("model.evaluate", "split"): "data.split",
    ("model.package", "training"): "model.select",
    ("model.package", "split"): "data.split",
    ("model.register", "training"): "model.select",
    ("model.register", "evaluation"): "model.evaluate",
    ("model.register", "dataset"): "data.ingest",
    ("model.register", "split"): "data.split",
    ("model.register", "package"): "model.package",
    ("model.register", "validation"): "data.validate",
    ("model.gate", "registered"): "model.register",
    ("model.gate", "evaluation"): "model.evaluate",
    ("model.gate", "package"): "model.package",
    ("model.gate", "validation"): "data.validate",
    ("model.promote", "gate"): "model.gate",
    ("model.promote", "split"): "data.split",
    ("model.deploy", "promotion"): "model.promote",
    ("model.deploy", "split"): "data.split",
    ("model.close_run", "trials"): "model.plan",
}


def _wiring(dag: Any) -> dict[tuple[str, str], str]:
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    wired = {}
    for task in dag.tasks:
        for name, value in _templated_values(task).items():
            if isinstance(value, PlainXComArg):
                assert value.key == "return_value", (task.task_id, name)
                wired[(task.task_id, name)] = value.operator.task_id
    return wired


def test_results_travel_as_xcomargs(dags):
    for pipeline in ("churn", "houses", "tickets"):
        assert _wiring(dags[f"{pipeline}_training"]) == TRAINING_WIRING, pipeline
        assert _wiring(dags[f"{pipeline}_monitoring"]) == {("emit_drift_event", "drift"): "drift_check"}
        assert _wiring(dags[f"{pipeline}_scoring"]) == {}
    approving = dags["churn_training+approval"]
    assert _wiring(approving) == {**TRAINING_WIRING, ("model.approve", "gate"): "model.gate"}


def test_only_the_edges_an_xcomarg_adds_and_the_chain_implies_are_dropped():
    import datetime as dt

    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import BaseOperator

    from airflow_mlops.factories.common import drop_implied_edges

    class Takes(BaseOperator):
        template_fields = ("value",)

        def __init__(self, *, value: Any = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.value = value

    with DAG("d", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        a = Takes(task_id="a")
        b = Takes(task_id="b", value=a.output)
        c = Takes(task_id="c", value=a.output)  # a -> b -> c implies a -> c: dropped
        d = Takes(task_id="d", value=a.output)  # only the XComArg links a and d: kept
        e, f = Takes(task_id="e"), Takes(task_id="f")
        b >> c
        a >> e >> f
        a >> f  # drawn, not added by an XComArg: kept although a -> e -> f implies it
    assert c.upstream_task_ids == {"a", "b"}
    drop_implied_edges(dag)
    assert [t.upstream_task_ids for t in (b, c, d, f)] == [{"a"}, {"b"}, {"a"}, {"a", "e"}]
    assert a.downstream_task_ids == {"b", "d", "e", "f"}


def test_at_task_time_the_xcomargs_resolve_and_the_approval_shows_the_gate(tmp_path, mlops_home, monkeypatch):
    from airflow_mlops.factories.training import build_training_dag

    spec_path = tmp_path / "churn.yaml"
    spec_path.write_text(EXAMPLE_SPEC.read_text().replace("  min_improvement: 0.0\n", APPROVAL))
    dag = build_training_dag(spec_path)
    gate = {"promote": True, "reasons": ["all gates passed"], "metric": "roc_auc", "candidate": 0.8123,
            "champion": 0.8, "champion_version": "2", "name": "churn_model", "version": "3"}  # fmt: skip
    split = {"train": {"uri": "/r/split/train.parquet"}, "test": {"uri": "/r/split/test.parquet"}}
    pushed = {"model.gate": gate, "data.split": split}

    class TaskInstance:
        def xcom_pull(self, task_ids: str, key: str = "return_value", default: Any = None, **_: Any) -> Any:
            assert key == "return_value"
            return pushed.get(task_ids, default)

    for task_id in ("model.approve", "model.promote", "model.evaluate"):
        task = dag.get_task(task_id)
        task.render_template_fields({"ti": TaskInstance(), "task": task})  # type: ignore[arg-type]
    approve, promote, evaluate = (dag.get_task(t) for t in ("model.approve", "model.promote", "model.evaluate"))
    assert approve.gate == gate and promote.gate == gate and promote.split == split
    assert evaluate.test_split_uri() == "/r/split/test.parquet"
    # The evidence is the request's body (built at task time, see core.model.evidence); the links come
    # from the MLflow connection of the DAG, without its credentials.
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", '{"conn_type": "mlflow", "host": "http://u:secret@mlflow:5000"}')
    body = approve.evidence({"ti": TaskInstance(), "task": approve}, gate)  # type: ignore[arg-type]
    assert body.startswith("### churn_model v3: the gate passed")
    assert "| **roc_auc** (gate) | 0.8123 | 0.8000 | +0.01230 (+1.2 pts) better |" in body
    assert "[v3 in MLflow](http://mlflow:5000/#/models/churn_model/versions/3)" in body and "secret" not in body
