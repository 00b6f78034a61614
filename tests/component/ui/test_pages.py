"""The model page's JSON and its rollback, against a real MLflow tracking server.

One ``mlflow server`` per module with a registered model of four versions (one not servable),
two recorded moves, monitoring runs and validation / quarantine files in the artifact root.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_SPEC
from tests.support.mlflow_server import mlflow_server
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component

MODEL = "churn_classifier"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(root) as uri:
        yield uri, root


@pytest.fixture(scope="module")
def registry(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Four versions: v1 and v2 servable and moved to in turn, v3 failed its gate, v4 has no ONNX."""
    from airflow_mlops.core.registry import promotion

    uri, _ = server
    versions = Versions(uri, MODEL, tmp_path_factory.mktemp("versions"))
    metrics = {"1": ("0.81", "0.70"), "2": ("0.84", "0.64"), "3": ("0.79", "0.71"), "4": ("0.83", "0.69")}
    for version, (auc, recall) in metrics.items():
        tags = {**SERVABLE, "test_roc_auc": auc, "test_recall": recall, "test_fingerprint": "f" * 16}
        if version == "3":
            tags.update(gate="failed", gate_reasons="roc_auc 0.79 is not above the champion's 0.84")
        if version == "4":
            tags.pop("onnx_uri")
        assert versions.add(tags, run=f"churn_training/manual__v{version}") == version
    client = versions.registry.client
    client.log_param(client.get_model_version(MODEL, "2").run_id, "estimator", "hist_gradient_boosting")
    client.log_param(client.get_model_version(MODEL, "2").run_id, "param.max_depth", "4")
    promotion.promote(versions.registry, MODEL, "1", "first champion", by="airflow:churn_training")
    promotion.promote(versions.registry, MODEL, "2", "roc_auc +0.03", by="alice", run="churn_training/manual__v2")
    experiment = versions.registry.use_experiment("churn_monitoring")
    for i, psi in enumerate((0.01, 0.05, 0.31)):
        run_id = versions.registry.create_run(
            experiment, f"scheduled__{i}", {"model_version": "2", "airflow.run_id": f"m{i}"}
        )
        with versions.registry.ending(run_id):
            versions.registry.log_batch(
                run_id,
                metrics={"psi_tenure_months": psi, "psi_monthly_charges": 0.02, "prediction_psi": psi / 2,
                         "labeled_rows": 40.0, "current_rows": 200.0, "labeled_roc_auc": 0.8 - i / 100,
                         "drifted_features": 1.0 if psi > 0.2 else 0.0, "performance_decay": 0.0},
                tags={"retrain": "drift" if psi > 0.2 else "no"},
            )  # fmt: skip
        time.sleep(0.01)
    return versions


@pytest.fixture
def app(server: Any, registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlops_home: Path) -> Any:
    from fastapi.testclient import TestClient

    from airflow_mlops import layout
    from airflow_mlops.ui.airflow_state import StaticState
    from airflow_mlops.ui.web import create_app

    uri, _ = server
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(EXAMPLE_SPEC, specs / "churn.yaml")
    monkeypatch.setenv("AIRFLOW_MLOPS_PIPELINES_DIR", str(specs))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # A failed validation with its Data Docs, and a quarantined batch with its report.
    validate = Path(layout.run_dir("churn", "manual__bad", "validate"))
    (validate / "data_docs").mkdir(parents=True)
    (validate / "data_docs" / "index.html").write_text("<html>GX Data Docs of the bad batch</html>")
    failure = {"expectation": "expect_column_values_to_not_be_null", "column": "tenure_months",
               "expected": {}, "observed": {"unexpected_count": 7}, "severity": "error"}  # fmt: skip
    report = {"success": False, "evaluated": 12, "failures": [failure], "quarantined": ["q"],
              "data_docs": str(validate / "data_docs" / "index.html")}  # fmt: skip
    (validate / "report.json").write_text(json.dumps(report))
    quarantine = Path(layout.artifact_root(), "churn", "quarantine", "manual__bad")
    quarantine.mkdir(parents=True)
    (quarantine / "batch 1.csv").write_text("a,b\n")
    (quarantine / "batch 1.csv.report.json").write_text(
        json.dumps(
            {
                "input": "/landing/batch 1.csv",
                "stage": "validate",
                "batch_checks": ["3 rows < min_rows 100"],
                "failures": [failure],
            }
        )
    )
    state = StaticState(
        runs={"churn_training": {"run_id": "manual__bad", "state": "failed", "note": "FAILED at data.validate"}},
        run_ids={"churn_training": ["manual__bad", "manual__never_validated"]},
        approvals=[{"dag_id": "churn_training", "run_id": "r9", "task_id": "model.approve", "map_index": -1,
                    "subject": "Promote?", "body": "evidence", "options": ["Approve", "Reject"], "params": {}}],
    )  # fmt: skip
    return TestClient(create_app(require_user=False, airflow_state=state, ttl_seconds=0.0))


def test_the_overview_names_the_champion_its_metric_the_drift_alert_and_the_waiting_approval(app):
    body = app.get("/api/overview").json()
    (row,) = body["pipelines"]
    champion = row["registry"]["champion"]
    assert (champion["version"], champion["by"], champion["why"]) == ("2", "alice", "roc_auc +0.03")
    assert champion["metric"] == "roc_auc" and champion["value"] == pytest.approx(0.84)
    assert champion["alias_mismatch"] is None
    assert row["registry"]["drift"]["drifted"] is True and row["registry"]["alert"]["reasons"] == ["drift"]
    assert row["approvals_open"] == 1 and row["runs"]["training"]["note"] == "FAILED at data.validate"
    assert row["inboxes"]["training"].endswith("churn/training")


def test_the_pipeline_page_holds_timeline_card_monitoring_and_data_quality(app):
    page = app.get("/api/pipelines/churn/page").json()
    timeline = page["registry"]["timeline"]
    assert [(m["kind"], m["from_version"], m["to_version"], m["by"]) for m in timeline["moves"]] == [
        ("promotion", "1", "2", "alice"),
        ("promotion", None, "1", "airflow:churn_training"),
    ]
    by_version = {v["version"]: v for v in timeline["versions"]}
    assert by_version["2"]["metrics"] == {"roc_auc": 0.84, "recall": 0.64} and by_version["2"]["promoted"]
    assert by_version["3"]["gate"] == "failed" and "not above" in by_version["3"]["gate_reasons"]
    assert not by_version["3"]["servable"] and not by_version["4"]["servable"] and by_version["1"]["servable"]
    card = page["registry"]["card"]
    assert card["estimator"] == "hist_gradient_boosting" and card["params"] == {"max_depth": "4"}
    assert (
        card["run_url"].startswith(os.environ["MLFLOW_TRACKING_URI"])
        and "#/models/churn_classifier/versions/2" in card["version_url"]
    )
    monitoring = page["monitoring"]
    assert [r["psi"]["tenure_months"] for r in monitoring["runs"]] == [0.01, 0.05, 0.31]
    assert monitoring["label_coverage"]["share"] == pytest.approx(0.2)
    (validation,) = page["quality"]["validations"]  # the run without a report is left out
    assert validation["success"] is False and validation["failures"][0]["column"] == "tenure_months"
    (batch,) = page["quality"]["quarantined"]
    assert batch["file"] == "batch 1.csv" and "3 rows < min_rows 100" in batch["reasons"]
    assert page["permissions"] == {"retrain": True, "rollback": True, "approve": True}
    docs = app.get(f"/files/churn/{validation['data_docs']}")
    assert docs.status_code == 200 and "GX Data Docs of the bad batch" in docs.text
    assert "sandbox" in docs.headers["content-security-policy"]
    assert app.get(f"/files/churn/{batch['report']}").json()["input"] == "/landing/batch 1.csv"


def test_the_files_route_serves_only_reports_of_the_pipeline(app):
    for path in ("runs/x/train/model.pkl", "../../etc/passwd", "quarantine/../runs/x", "lake/labeled/a.parquet"):
        assert app.get(f"/files/churn/{path}").status_code == 404, path
    assert app.get("/files/other/quarantine/manual__bad/batch 1.csv.report.json").status_code == 404


def test_rollback_needs_the_action_header_and_json_and_refuses_unservable_versions(app, registry):
    url = "/api/pipelines/churn/rollback"
    headers = {"X-Airflow-MLOps": "1"}
    assert app.post(url, json={"to_version": "1"}).status_code == 403  # no header: a cross-site form
    assert (
        app.post(
            url, content="to_version=1", headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
        ).status_code
        == 415
    )
    assert (
        app.post(url, json={"to_version": "1"}, headers={**headers, "Origin": "https://evil.example"}).status_code
        == 403
    )
    for version, why in (("3", "gate"), ("4", "ONNX"), ("2", "champion already"), ("x", "not a model version")):
        answer = app.post(url, json={"to_version": version}, headers=headers)
        assert answer.status_code == 409 and why in answer.json()["detail"], (version, answer.text)
    assert str(registry.registry.champion(MODEL).version) == "2"  # nothing moved


def test_rollback_moves_the_champion_and_records_the_user(app, registry):
    answer = app.post("/api/pipelines/churn/rollback", json={"to_version": "1", "reason": "v2 drops recall"},
                      headers={"X-Airflow-MLOps": "1"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert (record["from_version"], record["to_version"], record["by"]) == ("2", "1", "anonymous (no auth)")
    assert record["asset_event"]  # no Airflow database here: the answer says the event is missing
    page = app.get("/api/pipelines/churn/page").json()
    assert page["registry"]["champion"]["version"] == "1"
    newest = page["registry"]["timeline"]["moves"][0]
    assert (newest["kind"], newest["reason"], newest["to_version"]) == ("rollback", "rollback: v2 drops recall", "1")
    from airflow_mlops.core.registry import promotion

    promotion.promote(registry.registry, MODEL, "2", "restore for the other tests", by="test")


def test_an_alias_moved_by_hand_is_shown(app, registry):
    client = registry.registry.client
    client.set_registered_model_alias(MODEL, "champion", "4")  # as MLflow's UI would
    try:
        champion = app.get("/api/overview").json()["pipelines"][0]["registry"]["champion"]
        assert champion["version"] == "4" and champion["alias_mismatch"]["history_version"] == "2"
        assert "outside airflow-mlops" in champion["alias_mismatch"]["detail"]
    finally:
        client.set_registered_model_alias(MODEL, "champion", "2")


def test_an_unreachable_mlflow_is_an_error_on_the_page_not_an_empty_registry(app, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:pw-s3cret@127.0.0.1:9")
    body = app.get("/api/overview").json()
    error = body["pipelines"][0]["registry"]["error"]
    assert "cannot be reached" in error and "pw-s3cret" not in json.dumps(body) and "alice" not in json.dumps(body)
    page = app.get("/api/pipelines/churn/page").json()
    assert "error" in page["registry"] and page["quality"]["quarantined"]  # the rest still renders
