"""The training run's MLflow runs end when the training ends, whatever killed a trial."""

from __future__ import annotations

import pytest

from airflow_mlops.core import registry

pytestmark = pytest.mark.unit


def test_closing_the_training_run_ends_a_trial_run_its_dead_task_left_running(mlops_home):
    tracking_uri = f"sqlite:///{mlops_home}/mlflow.db"
    parent, experiment_id = registry.start_parent_run(tracking_uri, "closing", "r1", {})
    mlflow_client = registry.client(tracking_uri)
    # A trial task killed between creating its run and ending it; another that finished.
    stranded = mlflow_client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    finished = registry.log_child_run(tracking_uri, experiment_id, parent, "t2", {}, {"auc": 0.7}, {})
    other = mlflow_client.create_run(experiment_id).info.run_id  # not a child: left alone

    assert registry.close_run_if_open(tracking_uri, parent, "FAILED") is True
    status = {run: mlflow_client.get_run(run).info.status for run in (parent, stranded, finished, other)}
    assert status == {parent: "FAILED", stranded: "KILLED", finished: "FINISHED", other: "RUNNING"}
    # Closing again changes nothing, and a parent that already ended still has its stranded children ended.
    late = mlflow_client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    assert registry.close_run_if_open(tracking_uri, parent, "FAILED") is False
    assert mlflow_client.get_run(late).info.status == "KILLED"
