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
