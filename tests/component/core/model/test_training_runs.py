"""The training run's MLflow runs end when the training ends, whatever killed a trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.core.registry.client import Registry

pytestmark = pytest.mark.component


def test_closing_the_training_run_ends_a_trial_run_its_dead_task_left_running(mlops_home):
    registry = Registry(f"sqlite:///{mlops_home}/mlflow.db")
    parent, experiment_id = registry.start_parent_run("closing", "r1", {})
    mlflow_client = registry.client
    # A trial task killed between creating its run and ending it; another that finished.
    stranded = mlflow_client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    finished = registry.log_child_run(experiment_id, parent, "t2", {}, {"auc": 0.7}, {})
    other = mlflow_client.create_run(experiment_id).info.run_id  # not a child: left alone

    assert registry.close_run_if_open(parent, "FAILED") is True
    status = {run: mlflow_client.get_run(run).info.status for run in (parent, stranded, finished, other)}
    assert status == {parent: "FAILED", stranded: "KILLED", finished: "FINISHED", other: "RUNNING"}
    # Closing again changes nothing, and a parent that already ended still has its stranded children ended.
    late = mlflow_client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    assert registry.close_run_if_open(parent, "FAILED") is False
    assert mlflow_client.get_run(late).info.status == "KILLED"


def test_every_training_task_is_retried_after_faults_but_the_approval(spec, tmp_path):
    import datetime as dt

    from airflow_mlops.factories import build_training_dag
    from tests.conftest import EXAMPLE_SPEC

    dag = build_training_dag(EXAMPLE_SPEC)
    retried = {t.task_id: (t.retries, t.retry_delay) for t in dag.tasks}
    assert retried == dict.fromkeys([t.task_id for t in dag.tasks], (1, dt.timedelta(seconds=10)))
    assert {"data.ingest", "model.trial", "model.register", "model.promote", "model.deploy"} <= set(retried)
    import yaml

    data = yaml.safe_load(Path(EXAMPLE_SPEC).read_text())
    data.setdefault("promotion", {})["require_approval"] = True
    (tmp_path / Path(EXAMPLE_SPEC).name).write_text(yaml.safe_dump(data))
    approving = build_training_dag(tmp_path / Path(EXAMPLE_SPEC).name)
    assert {t.task_id: t.retries for t in approving.tasks}["model.approve"] == 0
    assert spec.model_copy(update={"retries": spec.retries.model_copy(update={"count": 3})}).fingerprint() == (
        spec.fingerprint()
    )  # how often a task is retried changes nothing that is trained


def test_bad_input_fails_at_once_while_other_errors_keep_their_retries():
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.core.data.sources import IngestError
    from airflow_mlops.operators.base import fail_without_retry_on_bad_input

    with pytest.raises(AirflowFailException, match="column 'x' holds text"), fail_without_retry_on_bad_input():
        raise IngestError("column 'x' holds text", "s3://bucket/batch.csv")
    # A lost database or store: the task's retries apply.
    with pytest.raises(ConnectionError), fail_without_retry_on_bad_input():
        raise ConnectionError("connection reset")
