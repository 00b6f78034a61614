"""DagBag integrity: the example DAGs import cleanly, fast, without heavy libraries.

Each check runs in a fresh interpreter so that modules imported by other tests
cannot hide a heavy import on the parse path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.devstack.check import HEAVY as CHECKED_HEAVY

pytestmark = pytest.mark.dags

REPO = Path(__file__).resolve().parents[2]
HEAVY = list(CHECKED_HEAVY)  # the same list `airflow-mlops check` holds a pipeline repository's DAGs to

PROBE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
times = {}
for path in sorted(__import__('pathlib').Path(sys.argv[1]).glob('*.py')):
    start = time.perf_counter()
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    times[path.name] = time.perf_counter() - start
full = DagBag(dag_folder=sys.argv[1], safe_mode=False)
print(json.dumps({
    "errors": {k: str(v) for k, v in full.import_errors.items()},
    "dags": {d.dag_id: {"tags": sorted(d.tags), "timetable": type(d.timetable).__name__,
                        "tasks": sorted(d.task_ids)} for d in full.dags.values()},
    "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules],
    "parse_seconds": times,
}))
"""


def _probe(dag_folder: Path, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_MLOPS_HOME": str(tmp_path / "home"),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_folder), json.dumps(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    return _probe(REPO / "dags", tmp_path_factory.mktemp("dagbag"))


def test_dags_import_without_errors(probe):
    assert probe["errors"] == {}
    pipelines = ("churn", "houses", "tickets")
    assert set(probe["dags"]) == {f"{p}_{kind}" for p in pipelines for kind in ("training", "scoring", "monitoring")}


def test_no_heavy_library_is_imported_at_parse_time(probe):
    assert probe["heavy"] == []


def test_each_dag_file_parses_within_budget(probe):
    # A DAG file that imported the ML stack at top level takes seconds; ours must not.
    assert set(probe["parse_seconds"]) == {f"{dag_id}.py" for dag_id in probe["dags"]}
    assert all(seconds < 1.0 for seconds in probe["parse_seconds"].values()), probe["parse_seconds"]


def test_schedules_and_tags(probe):
    dags = probe["dags"]
    assert dags["churn_training"]["timetable"] == "AssetOrTimeSchedule"  # cron OR data arrival OR drift
    assert dags["churn_monitoring"]["timetable"] == "AssetOrTimeSchedule"  # cron OR predictions logged
    assert dags["churn_scoring"]["timetable"] == "AssetTriggeredTimetable"
    assert dags["tickets_training"]["timetable"] == "AssetTriggeredTimetable"  # no cron: data arrival OR drift
    for dag_id, dag in dags.items():
        assert {"airflow-mlops", dag_id.split("_")[0]} <= set(dag["tags"])


def test_training_dag_has_every_stage(probe):
    assert probe["dags"]["churn_training"]["tasks"] == sorted(
        [
            "data.ingest",
            "data.validate",
            "data.split",
            "model.plan",
            "model.close_run",
            "model.trial",
            "model.select",
            "model.evaluate",
            "model.package",
            "model.register",
            "model.gate",
            "model.promote",
            "model.deploy",
        ]
    )


def test_a_bad_spec_is_an_import_error_naming_file_and_field(tmp_path):
    dags, include = tmp_path / "dags", tmp_path / "include" / "pipelines"
    dags.mkdir()
    include.mkdir(parents=True)
    spec = (REPO / "include" / "pipelines" / "churn.yaml").read_text().replace("window_batches: 4", "windows: 4")
    (include / "churn.yaml").write_text(spec)
    (dags / "churn_training.py").write_text((REPO / "dags" / "churn_training.py").read_text())
    result = _probe(dags, tmp_path)
    assert result["dags"] == {}
    (error,) = result["errors"].values()
    assert str(include / "churn.yaml") in error
    assert "data.windows: unknown field" in error
