"""The whole loop under a real Airflow 3 scheduler, triggerer and an MLflow server.

Starts ``airflow standalone`` and ``mlflow server`` on spare ports in a temporary
runtime folder, then: a labeled batch lands -> training -> champion v1; a drifted
batch lands -> scoring -> monitoring -> drift event -> retraining -> new version.
"""

from __future__ import annotations

import httpx
import pytest

from airflow_mlops.core import tables
from airflow_mlops.local.demo import DemoLoop
from airflow_mlops.local.rest import AirflowClient
from airflow_mlops.local.stack import Stack, StackConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    stack = Stack(StackConfig(root=root, airflow_port=8795, mlflow_port=5795)).start()
    try:
        result = DemoLoop(stack, rows=3000, say=print).run()
        yield stack, result
    finally:
        stack.stop()


def test_loop_finishes_without_failures(loop):
    _, result = loop
    assert result.failures == []


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
    assert set(dags) == {"churn_training", "churn_scoring", "churn_monitoring"}
    for dag in dags.values():
        assert dag["timetable_summary"], dag["dag_id"]
        assert {"airflow-mlops", "churn"} <= {t["name"] for t in dag["tags"]}
        assert not dag["is_paused"]
    assert client.import_errors() == []


def test_plugin_page_is_served_by_the_api_server(loop):
    stack, result = loop
    url = f"{stack.config.airflow_url}/mlops/api/pipelines"
    assert httpx.get(url, timeout=30).status_code == 401
    client = AirflowClient(stack.config.airflow_url, "admin", stack.admin_password())
    page = httpx.get(url, headers=client.http.headers, timeout=30).json()
    (churn,) = page
    assert churn["name"] == "churn" and churn["champion"] == result.champion
    assert [p["to_version"] for p in churn["promotions"]] == [p["to_version"] for p in result.promotions]
