"""The embedded stack's bookkeeping: environment and clean-up after a killed driver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.core import settings
from airflow_mlops.local.stack import StackConfig, reset, stop_stale

pytestmark = pytest.mark.unit


def test_processes_left_by_a_killed_driver_are_stopped_on_the_next_start(tmp_path):
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (tmp_path / "stack.pids").write_text(json.dumps([orphan.pid]))
    stop_stale(tmp_path)
    assert orphan.wait(timeout=10) != 0
    assert not (tmp_path / "stack.pids").exists()


def test_reset_removes_the_runtime_folder(tmp_path):
    root = tmp_path / "runtime"
    (root / "airflow").mkdir(parents=True)
    reset(root)
    assert not root.exists()


def test_stack_environment_points_every_process_at_the_same_roots(tmp_path):
    cfg = StackConfig(root=tmp_path, airflow_port=8123, mlflow_port=5123, extra_env={"X_EXTRA": "1"})
    env = cfg.environment()
    assert env[settings.HOME_ENV] == str(tmp_path)
    assert json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"]) == {"conn_type": "mlflow", "host": "http://127.0.0.1:5123"}
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags") and Path(env["AIRFLOW__CORE__DAGS_FOLDER"]).is_dir()
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)  # standalone spawns `airflow` by name
    assert env["X_EXTRA"] == "1"
