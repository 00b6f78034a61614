"""`airflow-mlops stack up | status | down` for real, run from a project directory that is not this repo.

The project holds copies of this repo's dags/ and its specs in a folder of another
name (``specs/``, passed with ``--pipelines-folder``): the DAG files' own path to
``include/pipelines/churn.yaml`` does not exist there, so they find the spec by name
through ``$AIRFLOW_MLOPS_PIPELINES_DIR``; the package's plugin loads through its entry
point (no plugins folder in the project).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.devstack.processes import free_port, members, port_open
from airflow_mlops.devstack.rest import AirflowClient
from airflow_mlops.devstack.stack import admin_password, read_state, stop_recorded
from tests.conftest import REPO

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "airflow-mlops")
CHURN_DAGS = ["churn_monitoring", "churn_scoring", "churn_training"]


def _cli(project: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "stack", *args], cwd=project, capture_output=True, text=True, timeout=timeout)


def test_stack_up_status_down_on_a_project_directory(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "dags", project / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "include" / "pipelines", project / "specs")
    root = tmp_path / "runtime"
    airflow_port, mlflow_port = free_port(), free_port()
    while mlflow_port == airflow_port:
        mlflow_port = free_port()
    ports = ["--airflow-port", str(airflow_port), "--mlflow-port", str(mlflow_port)]
    try:
        up = _cli(project, "up", "--root", str(root), *ports, "--pipelines-folder", "specs")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"Airflow UI:  http://127.0.0.1:{airflow_port}" in up.stdout
        assert f"MLflow UI:   http://127.0.0.1:{mlflow_port}" in up.stdout
        assert f"DAGs in Airflow: {', '.join(CHURN_DAGS)}" in up.stdout, up.stdout
        assert f"training inbox (labeled files -> a training run): {root}/landing/churn/training" in up.stdout
        assert (root / "landing" / "churn" / "scoring").is_dir()  # ready for `cp file <inbox>/`
        assert "IMPORT ERROR" not in up.stdout

        state = read_state(root)
        assert state is not None and state.detached and state.running()  # `up` returned, the stack runs on
        assert state.config.dags_folder == project / "dags" and state.config.pipelines_folder == project / "specs"

        status = _cli(project, "status", "--root", str(root), timeout=120)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "status: UP" in status.stdout and status.stdout.count("health: ok") == 2

        password = admin_password(state.config)
        assert password is not None and f"password {password}" in up.stdout
        client = AirflowClient(state.config.airflow_url, "admin", password)
        for dag_id in CHURN_DAGS:
            dag = client.dag(dag_id)
            assert dag is not None and dag["fileloc"].startswith(str(project / "dags")), dag_id
        assert client.import_errors() == []

        again = _cli(project, "up", "--root", str(root), *ports, "--pipelines-folder", "specs", timeout=120)
        assert again.returncode == 0 and "already up" in again.stdout
        assert read_state(root).to_json() == state.to_json()  # type: ignore[union-attr]

        down = _cli(project, "down", "--root", str(root), timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert members(state.processes) == set()  # services, their children and task processes: all gone
        assert not port_open("127.0.0.1", airflow_port) and not port_open("127.0.0.1", mlflow_port)
        assert read_state(root) is None

        twice = _cli(project, "down", "--root", str(root), timeout=60)
        assert twice.returncode == 0 and "nothing to stop" in twice.stdout
        after = _cli(project, "status", "--root", str(root), timeout=60)
        assert after.returncode == 1 and "no stack runs" in after.stdout
    finally:
        stop_recorded(root, timeout=10)
