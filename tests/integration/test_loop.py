"""The whole loop under a real Airflow 3 scheduler, triggerer and an MLflow server.

Starts ``airflow standalone`` and ``mlflow server`` on spare ports in a temporary
runtime folder, then: a labeled batch lands -> training -> champion v1; a drifted
batch lands -> scoring -> monitoring -> drift event -> retraining -> new version.
"""

from __future__ import annotations

import os

import httpx
import pytest

from airflow_mlops.core.io import tables
from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.rest import AirflowClient
from airflow_mlops.devstack.stack import Stack, StackConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    environment = dict(os.environ)  # the demo points this process's airflow-mlops roots at the stack
    stack = Stack(StackConfig(root=root, airflow_port=8795, mlflow_port=5795)).start()
    try:
        demo = DemoLoop(stack, rows=3000, say=print)
        result = demo.run()
        yield stack, result
    finally:
        demo.stop_serving()
        stack.stop()
        os.environ.clear()
        os.environ.update(environment)


def test_loop_finishes_without_failures(loop):
    _, result = loop
    assert result.failures == []


def test_the_demo_served_the_champion_and_its_prediction_log_has_the_rows(loop):
    stack, result = loop
    served = result.serving
    assert served["model_version"] == result.champion and len(served["predictions"]) == 5
    assert all(0.0 <= s <= 1.0 for s in served["scores"])
    logs = (stack.config.root / "artifacts" / "churn" / "prediction_log").rglob("*-serving-*.parquet")
    demo_rows = [t for t in (tables.read_table(str(p)) for p in logs) if served["request_id"] in set(t["request_id"])]
    assert len(demo_rows) == 1 and len(demo_rows[0]) == 5  # stopped after the demo: its 5 rows were flushed


def test_every_run_is_event_driven_and_succeeds_in_order(loop):
    _, result = loop
    assert [(r["dag_id"], r["run_type"], r["state"]) for r in result.runs] == [
        ("churn_training", "asset_triggered", "success"),
        ("churn_scoring", "asset_triggered", "success"),
        ("churn_monitoring", "asset_triggered", "success"),
        ("churn_training", "asset_triggered", "success"),
    ]
    assert result.runs[2]["tasks"] == {"drift_check": "success", "emit_drift_event": "success"}
    # Who triggered whom: data arrival, then the chain that ends in a drift-caused retraining.
    assert [r["triggered_by"] for r in result.runs] == [
        ["mlops.churn.landing.training"],
        ["mlops.churn.landing.scoring"],
        ["mlops.churn.predictions"],
        ["mlops.churn.drift"],
    ]


def test_first_model_became_champion_and_retraining_registered_a_second_version(loop):
    _, result = loop
    assert [v["version"] for v in result.versions] == ["1", "2"]
    assert result.versions[0]["gate"] == "passed"
    assert result.promotions[0]["from_version"] is None and result.promotions[0]["to_version"] == "1"
    gate = result.retrain_gate
    assert gate["version"] == "2" and gate["champion_version"] == "1"
    # Whatever the decision, the champion follows it and the reasons are recorded.
    assert result.champion == ("2" if gate["promote"] else "1")
    assert result.versions[1]["gate"] == ("passed" if gate["promote"] else "failed")
    assert any("champion" in reason for reason in gate["reasons"])


def test_drift_flagged_the_shifted_features_only(loop):
    _, result = loop
    assert result.drift["drift_detected"]
    assert {"monthly_charges", "usage_gb"} <= set(result.drift["drifted_features"])
    assert "region" not in result.drift["drifted_features"]


def test_every_prediction_was_logged(loop):
    stack, _ = loop
    logs = sorted((stack.config.root / "artifacts" / "churn" / "prediction_log").rglob("*.parquet"))
    logs = [p for p in logs if "-serving-" not in p.name]  # the batch scoring run's log
    assert len(logs) == 1
    log = tables.read_table(str(logs[0]))
    assert len(log) == 3000 and log["request_id"].is_unique and set(log["model_version"]) == {"1"}


def test_landing_inboxes_are_empty_after_claiming(loop):
    stack, _ = loop
    for kind in ("training", "scoring"):
        assert list((stack.config.root / "landing" / "churn" / kind).iterdir()) == []


def test_dags_show_in_the_ui_api_with_schedule_and_tags(loop):
    stack, _ = loop
    client = AirflowClient(stack.config.airflow_url, "admin", stack.admin_password())
    dags = {d["dag_id"]: d for d in client.get("/dags", tags=["airflow-mlops"])["dags"]}
    pipelines = ("churn", "houses", "tickets")  # the example pipelines of dags/
    assert set(dags) == {f"{p}_{kind}" for p in pipelines for kind in ("training", "scoring", "monitoring")}
    for dag in dags.values():
        assert dag["timetable_summary"], dag["dag_id"]
        assert {"airflow-mlops", dag["dag_id"].split("_")[0]} <= {t["name"] for t in dag["tags"]}
        assert not dag["is_paused"]
    assert client.import_errors() == []


def test_plugin_page_is_served_by_the_api_server(loop):
    stack, result = loop
    url = f"{stack.config.airflow_url}/mlops/api/pipelines"
    assert httpx.get(url, timeout=30).status_code == 401
    client = AirflowClient(stack.config.airflow_url, "admin", stack.admin_password())
    page = httpx.get(url, headers=client.http.headers, timeout=30).json()
    assert sorted(p["name"] for p in page) == ["churn", "houses", "tickets"]
    (churn,) = [p for p in page if p["name"] == "churn"]
    assert churn["champion"] == result.champion
    assert [p["to_version"] for p in churn["promotions"]] == [p["to_version"] for p in result.promotions]


def test_the_served_champion_answers_swaps_under_load_and_logs_every_prediction(loop):
    """As a new user would: start `airflow-mlops serve`, send good and bad requests, move the
    champion while clients keep sending, stop the server, count the logged predictions."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    from airflow_mlops.core.io import storage
    from airflow_mlops.core.registry import promotion
    from airflow_mlops.core.registry.client import Registry

    stack, result = loop
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**stack.config.environment(), "AIRFLOW_MLOPS_SERVE_TOKEN": "integration-token"}
    spec_path = stack.config.pipelines_folder / "churn.yaml"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow-mlops"), "serve", str(spec_path), "--port", str(port),
         "--poll-seconds", "0.5", "--log-flush-seconds", "1"],
        env=env, start_new_session=True,
    )  # fmt: skip
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer integration-token"}
    row = {"customer_id": "c-1", "tenure_months": 3, "monthly_charges": 80.5, "support_calls": 4, "usage_gb": None,
           "plan": "basic", "region": "north", "payment_method": "card"}  # fmt: skip
    name, registry = "churn_classifier", Registry(stack.config.mlflow_url)
    other = "1" if result.champion == "2" else "2"
    answered, failures, versions = [0], [], []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert httpx.get(f"{url}/health/ready").json()["model_version"] == result.champion
        good = httpx.post(f"{url}/v1/predict", json={"instances": [row]}, headers=auth)
        assert good.status_code == 200 and good.json()["model_version"] == result.champion
        answered[0] += 1
        bad = httpx.post(f"{url}/v1/predict", json={"instances": [{**row, "tenure_months": "three"}]}, headers=auth)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "tenure_months"
        assert httpx.post(f"{url}/v1/predict", json={"instances": [row]}).status_code == 401

        stop, counting = threading.Event(), threading.Lock()

        def client() -> None:
            with httpx.Client(base_url=url, headers=auth, timeout=10) as http:
                while not stop.is_set():
                    try:
                        answer = http.post("/v1/predict", content=json.dumps({"instances": [row]}))
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if answer.status_code != 200:
                        failures.append(answer.status_code)
                    else:
                        with counting:
                            answered[0] += 1
                        versions.append(answer.json()["model_version"])

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(1.0)
        promotion.promote(registry, name, other, "integration: swap under load", "test")
        deadline = time.monotonic() + 30
        while (not versions or versions[-1] != other) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for thread in clients:
            thread.join()
        assert failures == []
        assert versions[0] == result.champion and versions[-1] == other
    finally:
        promotion.promote(registry, name, result.champion, "integration: restore", "test")
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    log_root = stack.config.root / "artifacts" / "churn" / "prediction_log"
    logs = storage.list_files_recursive(str(log_root), (".parquet",))
    ours = [u for u in logs if f"-{server.pid}-" in u.rsplit("/", 1)[-1]]  # this server's files (one process)
    assert sum(len(tables.read_table(u)) for u in ours) == answered[0]  # SIGTERM flushed the rest: nothing lost
