"""The DAG run note, written by the dag-run listener through Airflow's own run loop.

``dag.test()`` drives ``DagRun.update_state``, the scheduler's code path that calls the dag-run
listeners, against a real (SQLite) metadata database; the listener comes in as a plugin from the
plugins folder, as the entry point brings it to a scheduler. Runs in a fresh interpreter with its
own AIRFLOW_HOME (the database is migrated there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.component

DAGS = """
import datetime as dt

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.core.model import outcome
from airflow_mlops.operators.base import MlopsBaseOperator

GATE = {"metric": "roc_auc", "candidate": 0.8123, "champion": 0.8022, "champion_version": "1", "version": "2"}


class Decide(MlopsBaseOperator):
    def __init__(self, *, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def execute(self, context):
        if self.mode == "gate":
            self.record_outcome(context, outcome.gate_passed(GATE, self.task_id))
        elif self.mode == "promote":
            self.record_outcome(context, outcome.promoted({"from_version": "1", "to_version": "2"}, GATE))
        elif self.mode == "fail":
            raise ValueError("data validation failed for pipeline 'tiny' (1 of 3 expectations):\\n"
                             "  - expect_column_values_to_be_between on column 'age': expected 0..120, observed 130")
        else:
            raise AirflowSkipException("nothing landed in the training inbox")


def boom():
    raise RuntimeError("killed")


def dag(mode, tags=("airflow-mlops",)):
    with DAG(f"notes_{mode}", schedule=None, start_date=dt.datetime(2026, 1, 1), tags=list(tags)) as made:
        if mode in ("plain", "other"):
            PythonOperator(task_id="boom", python_callable=boom)
        else:
            Decide(task_id="model.decide", mode=mode, spec_path="/unused.yaml")
    return made


promote, fail, skip, gate, plain = (dag(m) for m in ("promote", "fail", "skip", "gate", "plain"))
other = dag("other", tags=["not-ours"])
"""

PROBE = """
import json, sys, runpy
from airflow.settings import Session
from airflow.models.dagrun import DagRun
from airflow.models.hitl import HITLDetail
from airflow.models.taskinstance import TaskInstance

dags = runpy.run_path(sys.argv[1])
notes = {}
for name in ("promote", "fail", "skip", "gate", "plain", "other"):
    run = dags[name].test()
    session = Session()
    notes[name] = session.query(DagRun).filter_by(dag_id=run.dag_id, run_id=run.run_id).one().note
# An approver rejected the candidate the gate passed (the HITL row the UI's answer writes):
session = Session()
dr = session.query(DagRun).filter_by(dag_id="notes_gate").one()
ti = session.query(TaskInstance).filter_by(dag_id="notes_gate", run_id=dr.run_id).one()
session.add(HITLDetail(ti_id=ti.id, options=["Approve", "Reject"], subject="Promote?", chosen_options=["Reject"],
                       responded_by={"id": "1", "name": "alice"}))
session.flush()
from airflow_mlops.notifiers.run_notes import write_note
write_note(dr)
session.commit()
notes["rejected"] = Session().query(DagRun).filter_by(dag_id="notes_gate").one().note
print("NOTES " + json.dumps(notes))
"""


def test_every_run_ends_with_a_note_saying_what_happened(tmp_path: Path):
    home, dags, plugins = tmp_path / "airflow", tmp_path / "dags", tmp_path / "plugins"
    for folder in (home, dags, plugins):
        folder.mkdir()
    (dags / "notes.py").write_text(DAGS)
    # A scheduler gets the plugin from the package's entry point; here the plugins folder brings it.
    (plugins / "run_notes_plugin.py").write_text("from airflow_mlops.notifiers.run_notes import RunNotesPlugin\n")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
    }
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    done = subprocess.run([sys.executable, "-c", PROBE, str(dags / "notes.py")], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("NOTES ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(lines[0].removeprefix("NOTES ")) == {
        "promote": "PROMOTED v2 (+0.0101 roc_auc over v1)",
        "fail": "FAILED at model.decide: data validation failed for pipeline 'tiny' (1 of 3 expectations): "
        "expect_column_values_to_be_between on column 'age': expected 0..120, observed 130",
        "skip": "SKIPPED: nothing landed in the training inbox",
        "gate": "GATE PASSED v2",
        "plain": "FAILED at boom: see the task log",  # a task of another kind recorded nothing
        "other": None,  # not an airflow-mlops DAG: left alone
        "rejected": "REJECTED by alice: v2 not promoted",
    }
