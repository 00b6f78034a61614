"""The triggers of issue 15 under a real scheduler and triggerer (``airflow standalone``) and MLflow server.

The churn pipeline alone (its training DAG, one candidate, 2,000 rows), with ``schedule.on_message``
on a Redis list (database 11, flushed before and after) and the code-change watcher polling every 5 s:

- a labeled batch lands: the first champion, tagged with its training fingerprint;
- a malformed message, then a good one, are pushed on the list: one training run, triggered by the
  message Asset, with the message's reason on the MLflow run and the new version; the malformed one
  is in the dead-letter list and started nothing;
- a trivial spec edit (description, owner): no run;
- a real one (``model.code_version``): exactly one run, triggered by the code-change Asset, which
  trains (no "already trained" skip) and tags the new version with the new fingerprint; none after.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from airflow_mlops.core.registry.client import Registry
from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.stack import Stack, StackConfig, single_pipeline_project
from airflow_mlops.spec import load_spec

pytestmark = pytest.mark.integration

DB, KEY, CONN_ID = 11, "mlops:churn:retrain", "redis_mlops_it"
AIRFLOW_PORT, MLFLOW_PORT = 8711, 5711
QUIET_SECONDS = 30  # six polls of the code-change watcher: long enough for an event that should not come


def _write(path: Path, raw: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _wait_parsed(demo: DemoLoop, description: str, timeout: float = 120) -> None:
    """Until the DAG processor parsed the edited spec (the DAG's description carries the spec's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if description in str((demo.client.dag("churn_training") or {}).get("description")):
            return
        time.sleep(2)
    raise TimeoutError(f"the edited spec was not parsed within {timeout}s")


def _new_runs(demo: DemoLoop) -> list[dict[str, Any]]:
    return [r for r in demo.client.dag_runs("churn_training") if r["dag_run_id"] not in demo._seen["churn_training"]]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("triggers")
    dags, pipelines = single_pipeline_project(base / "project")
    for other in ("churn_scoring.py", "churn_monitoring.py"):
        (dags / other).unlink()
    spec_file = pipelines / "churn.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["schedule"] = {"on_data_arrival": True, "on_drift": False, "code_change_poll_seconds": 5,
                       "on_message": {"scheme": "redis+list", "queue": KEY, "conn_id": CONN_ID}}  # fmt: skip
    raw["model"]["candidates"] = [{"estimator": "logistic_regression", "params": {"max_iter": 300}}]
    _write(spec_file, raw)
    queue = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    queue.flushdb()
    connection = {"conn_type": "redis", "host": "127.0.0.1", "port": 6379, "extra": {"db": DB}}
    cfg = StackConfig(root=base / "stack", dags_folder=dags, pipelines_folder=pipelines,
                      airflow_port=AIRFLOW_PORT, mlflow_port=MLFLOW_PORT,
                      extra_env={f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection)})  # fmt: skip
    environment = dict(os.environ)
    started = time.monotonic()
    stack = Stack(cfg).start()
    facts: dict[str, Any] = {}
    try:
        demo = DemoLoop(stack, rows=2000, say=print)
        demo.dags = {"training": "churn_training"}
        demo._prepare()
        name = demo.spec.registered_model_name
        registry = Registry(cfg.mlflow_url)

        demo._first_training()
        facts["first"] = demo.result.runs[-1]
        facts["v1"] = registry.client.get_model_version(name, "1").tags

        queue.lpush(KEY, b"retrain now!")  # not JSON: dropped by the trigger
        queue.lpush(KEY, json.dumps({"reason": "it: new labels from the CRM", "force_retrain": True, "id": "it-1"}))
        facts["message_run"] = demo._await_run("training", "asset_triggered")
        facts["message_tasks"] = demo.result.runs[-1]
        facts["after_message"] = len(registry.client.search_model_versions(f"name='{name}'"))
        facts["v2"] = registry.client.get_model_version(name, "2").tags if facts["after_message"] >= 2 else {}
        facts["dead"] = queue.lrange(f"{KEY}:dead", 0, -1)
        facts["queue_left"] = (queue.llen(KEY), queue.llen(f"{KEY}:processing"))

        raw["description"], raw["owner"] = "Edited: only the words changed.", "another-team"
        _write(spec_file, raw)
        _wait_parsed(demo, "only the words changed")
        time.sleep(QUIET_SECONDS)
        facts["after_trivial"] = _new_runs(demo)

        raw["model"]["code_version"] = "labeling-v2"
        raw["description"] = "Edited again: the training code changed."
        _write(spec_file, raw)
        facts["new_fingerprint"] = load_spec(spec_file).training_fingerprint()
        _wait_parsed(demo, "the training code changed")
        facts["change_run"] = demo._await_run("training", "asset_triggered")
        facts["change_tasks"] = demo.result.runs[-1]
        versions = registry.client.search_model_versions(f"name='{name}'")
        newest = max(versions, key=lambda v: int(v.version))
        facts["v3"] = newest.tags
        facts["v3_run"] = registry.client.get_run(newest.run_id).data.tags
        time.sleep(QUIET_SECONDS)
        facts["after_change"] = _new_runs(demo)
        facts["seconds"] = time.monotonic() - started
        print(f"triggers integration: {facts['seconds']:.0f} s")
        yield facts
    finally:
        stack.stop()
        queue.flushdb()
        queue.close()
        os.environ.clear()
        os.environ.update(environment)


def test_the_first_champion_carries_its_training_fingerprint(world):
    assert world["first"]["state"] == "success"
    assert world["v1"]["training_fingerprint"] and "airflow.trigger" not in world["v1"]


def test_a_message_starts_one_training_run_with_its_reason_on_the_run_and_the_version(world):
    run, tasks = world["message_run"], world["message_tasks"]
    assert run["state"] == "success" and tasks["triggered_by"] == ["mlops.churn.message"]
    assert tasks["tasks"]["model.trial"] == "success"  # force_retrain: trained on the same data again
    v2 = world["v2"]
    assert v2["airflow.reason"] == "it: new labels from the CRM"
    assert v2["airflow.trigger"] == "message" and v2["airflow.message_id"] == "it-1"


def test_the_malformed_message_is_dead_lettered_and_the_list_is_drained(world):
    assert world["dead"] == [b"retrain now!"]
    assert world["queue_left"] == (0, 0)
    assert world["after_message"] == 2  # one version per good message, none for the bad one


def test_a_trivial_spec_edit_starts_no_run(world):
    assert world["after_trivial"] == []


def test_a_change_of_what_is_trained_starts_exactly_one_run_that_trains(world):
    run, tasks = world["change_run"], world["change_tasks"]
    assert run["state"] == "success" and tasks["triggered_by"] == ["mlops.churn.code_change"]
    assert tasks["tasks"]["model.trial"] == "success"
    assert world["v3"]["training_fingerprint"] == world["new_fingerprint"] != world["v1"]["training_fingerprint"]
    assert world["v3"]["airflow.trigger"] == "code_change"
    assert world["v3"]["airflow.reason"].startswith("training spec changed: fingerprint")
    assert world["v3_run"]["airflow.reason"] == world["v3"]["airflow.reason"]
    assert world["after_change"] == []  # not twice
