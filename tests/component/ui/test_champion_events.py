"""The champion Asset event of a move made outside a task, on a real Airflow database.

``ui.champion_events`` sends it in-process (Airflow's AssetManager, as inside the api-server)
and through the REST API (Airflow's own FastAPI app, in-process, with a JWT of its auth
manager); a DAG scheduled on the champion asset is queued by each, as by a promote task's
outlet event. Run in a fresh interpreter by ``tests.support.airflow_db``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.airflow_db import AirflowHome, migrated_database

pytestmark = pytest.mark.component

DAGS = """
import datetime as dt

from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

from airflow_mlops.factories.assets import pipeline_assets

champion = pipeline_assets("churn").champion

with DAG("deploys_the_champion", schedule=[champion], start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
    EmptyOperator(task_id="deploy")
"""

RECORD = {"id": "abc123", "from_version": "3", "to_version": "2", "at": "2026-12-01T10:00:00+00:00",
          "by": "cli/ops", "reason": "rollback: alerts after v3", "rollback": True, "integrity": "checked"}  # fmt: skip


def test_a_rollback_outside_a_task_tells_the_dags_scheduled_on_the_champion_asset(tmp_path: Path):
    home = AirflowHome(tmp_path / "airflow", migrated_database(tmp_path / "template"), {})
    dag_file = home.folder / "dags" / "deploys_the_champion.py"
    dag_file.write_text(DAGS)
    args = {"pipeline": "churn", "model": "churn_classifier", "record": RECORD, "dag_file": str(dag_file),
            "role": "admin"}  # fmt: skip
    env = {"AIRFLOW_MLOPS_HOME": str(tmp_path / "mlops"), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-secret-of-enough-length-for-hs512-signing-0123456789"}  # fmt: skip
    answer = home.run("champion-event", args, extra_env=env)

    # Before any DAG declaring it was parsed, Airflow knows no such asset: said, not ignored.
    assert "Airflow knows no asset named 'mlops.churn.champion'" in answer["unknown_asset"]
    assert "rest_error" not in answer, answer.get("rest_error")
    expected = {"model": "churn_classifier", **RECORD}
    in_process, rest = answer["events"]
    assert in_process == {"id": answer["in_process_id"], "extra": expected}
    assert rest["id"] == answer["rest"]["id"] and rest["extra"] == {**expected, "from_rest_api": True}
    assert answer["queued_dags"] == ["deploys_the_champion"]
