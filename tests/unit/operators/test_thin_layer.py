"""Thin-layer checks: operators only assign in __init__, hooks resolve connections, plugin renders."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.base import claimed_uris_from_events, upstream_result
from airflow_mlops.operators.data import ValidateDataOperator

pytestmark = pytest.mark.unit


def test_operator_init_assigns_templates_verbatim_and_reads_nothing():
    op = ValidateDataOperator(task_id="v", spec_path="/does/not/exist.yaml", dataset="{{ x }}")
    assert op.spec_path == "/does/not/exist.yaml" and op.dataset == "{{ x }}"
    assert set(op.template_fields) == {"spec_path", "dataset"}


def test_upstream_result_names_the_parameter_when_it_is_not_a_task_result():
    assert upstream_result({"a": 1}, "split") == {"a": 1}
    with pytest.raises(TypeError, match="parameter 'split' rendered to str"):
        upstream_result("{'a': 1}", "split")  # e.g. an xcom_pull template, rendered as text


def test_claimed_uris_are_collected_from_all_triggering_events():
    events = {
        "asset": [
            SimpleNamespace(extra={"payload": {"claimed": ["a", "b"]}}),
            SimpleNamespace(extra={"from_trigger": True, "payload": {"claimed": ["c"]}}),
            SimpleNamespace(extra=None),
        ]
    }
    assert claimed_uris_from_events({"triggering_asset_events": events}) == ["a", "b", "c"]
    assert claimed_uris_from_events({}) == []


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        ({"conn_type": "mlflow", "host": "http://mlflow", "port": 5000}, "http://mlflow:5000"),
        ({"conn_type": "mlflow", "host": "mlflow.internal"}, "http://mlflow.internal"),
        ({"conn_type": "mlflow", "host": "sqlite:////tmp/m.db"}, "sqlite:////tmp/m.db"),
    ],
)
def test_mlflow_hook_builds_the_tracking_uri(monkeypatch, conn, expected):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps(conn))
    assert MlflowHook(mlflow_conn_id="mlflow_test").tracking_uri == expected


def test_mlflow_hook_hands_out_one_registry_on_its_uri(monkeypatch):
    from airflow_mlops.core.registry.client import Registry

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", "host": "sqlite:////tmp/m.db"}))
    hook = MlflowHook(mlflow_conn_id="mlflow_test")
    registry = hook.get_conn()
    assert isinstance(registry, Registry) and registry.tracking_uri == hook.get_uri() == "sqlite:////tmp/m.db"
    assert hook.get_conn() is registry  # one client per hook


def test_mlflow_hook_keeps_credentials_out_of_the_uri(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_TEST",
        json.dumps({"conn_type": "mlflow", "host": "https://mlflow", "login": "u", "password": "s3cret"}),
    )
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    uri = MlflowHook(mlflow_conn_id="mlflow_test").tracking_uri
    assert "s3cret" not in uri
    import os

    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"


def test_mlflow_hook_moves_userinfo_of_the_host_out_of_the_uri(monkeypatch):
    import os

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_TEST",
        json.dumps({"conn_type": "mlflow", "host": "https://alice:p%40ss-w0rd@mlflow.internal/base"}),
    )
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    uri = MlflowHook(mlflow_conn_id="mlflow_test").tracking_uri
    assert uri == "https://mlflow.internal/base"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("alice", "p@ss-w0rd")


def test_plugin_page_lists_pipelines_and_reports_bad_specs(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from airflow_mlops.ui.plugin import AirflowMlopsPlugin
    from airflow_mlops.ui.web import create_app
    from tests.conftest import EXAMPLE_SPEC

    (tmp_path / "churn.yaml").write_text(EXAMPLE_SPEC.read_text())
    (tmp_path / "broken.yaml").write_text("name: x\n")
    monkeypatch.setenv("AIRFLOW_MLOPS_PIPELINES_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    anonymous = TestClient(AirflowMlopsPlugin.fastapi_apps[0]["app"])
    assert anonymous.get("/api/pipelines").status_code == 401  # Airflow does not guard plugin apps itself
    client = TestClient(create_app(require_user=False))
    pipelines = client.get("/api/pipelines").json()
    assert [p.get("name") for p in pipelines] == [None, "churn"]
    assert "data: Field required" in pipelines[0]["error"]
    assert pipelines[1]["dags"] == ["churn_training", "churn_scoring", "churn_monitoring"]
    page = client.get("/").text
    assert "data-view='overview'" in page and "/static/app.js" in page
    assert "MLOps pipelines" in client.get("/static/app.js").text
    assert [p["name"] for p in client.get("/api/overview").json()["pipelines"]] == ["churn"]
    assert [v["destination"] for v in AirflowMlopsPlugin.external_views] == ["nav", "dag"]


def test_training_dag_asks_for_approval_only_when_the_spec_says_so(tmp_path):
    from airflow_mlops.factories.training import build_training_dag
    from airflow_mlops.operators.approval import PromotionApprovalOperator
    from tests.conftest import EXAMPLE_SPEC

    plain = build_training_dag(EXAMPLE_SPEC)
    assert "model.approve" not in plain.task_ids
    assert plain.get_task("model.promote").upstream_task_ids == {"model.gate"}

    approval = "  min_improvement: 0.0\n  require_approval: true\n  approval_timeout_hours: 24\n"
    text = EXAMPLE_SPEC.read_text().replace("  min_improvement: 0.0\n", approval)
    spec_path = tmp_path / "churn.yaml"
    spec_path.write_text(text)
    dag = build_training_dag(spec_path)
    approve = dag.get_task("model.approve")
    assert isinstance(approve, PromotionApprovalOperator)
    assert approve.upstream_task_ids == {"model.gate"} and dag.get_task("model.promote").upstream_task_ids == {
        "model.approve"
    }
    assert approve.defaults == ["Reject"] and approve.response_timeout.total_seconds() == 24 * 3600
    # Mapped trials feed the select task; package and evaluate both feed register.
    assert dag.get_task("model.select").upstream_task_ids == {"model.trial"}
    assert dag.get_task("model.register").upstream_task_ids >= {"model.evaluate", "model.package"}


def test_approval_skips_itself_when_the_gate_refused(monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_mlops.operators.approval import PromotionApprovalOperator

    approve = PromotionApprovalOperator(task_id="approve")

    class FakeTI:
        def xcom_pull(self, task_ids):
            assert task_ids == "model.gate"
            return {"promote": False, "reasons": ["roc_auc=0.5 fails the threshold >= 0.6"]}

    with pytest.raises(AirflowSkipException, match=r"the gate did not pass \(roc_auc=0.5 fails"):
        approve.execute({"ti": FakeTI()})


class _OutletEvents(dict):
    def __missing__(self, key):
        self[key] = SimpleNamespace(extra=None)
        return self[key]


def _drift_result(**overrides):
    result = {
        "drift_detected": False,
        "drifted_features": [],
        "scores": {"plan": 0.01},
        "psi_threshold": 0.2,
        "performance": {
            "metric": "roc_auc",
            "value": 0.41,
            "test_value": 0.83,
            "decayed": True,
            "decision": "roc_auc 0.4100 on 3000 labeled predictions is 0.4200 worse than ...",
            "labeled_rows": 3000,
        },
        "performance_decay": True,
        "retrain": True,
        "retrain_reasons": ["performance_decay"],
        "model_version": "1",
        "report_uri": "/r/drift_report.json",
    }
    result.update(overrides)
    return result


def test_performance_decay_alone_emits_the_drift_event_with_the_metrics():
    from airflow.sdk import Asset

    from airflow_mlops.operators.operations import EmitDriftEventOperator

    asset = Asset("mlops.churn.drift")
    op = EmitDriftEventOperator(task_id="emit", spec_path="/x.yaml", drift=_drift_result(), outlets=[asset])
    events = _OutletEvents()
    extra = op.execute({"outlet_events": events})
    assert events[asset].extra == extra
    assert extra["retrain_reasons"] == ["performance_decay"] and extra["performance"]["value"] == 0.41
    assert extra["drift_detected"] is False and extra["scores"] == {"plan": 0.01}
    json.dumps(extra)  # event metadata must serialise


def test_no_drift_and_no_decay_skips_and_says_why():
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_mlops.operators.operations import EmitDriftEventOperator

    calm = _drift_result(
        performance={"decision": "no decision: 12 labeled prediction(s), fewer than 200", "decayed": False},
        performance_decay=False,
        retrain=False,
        retrain_reasons=[],
    )
    op = EmitDriftEventOperator(task_id="emit", spec_path="/x.yaml", drift=calm)
    with pytest.raises(AirflowSkipException, match="performance: no decision: 12 labeled"):
        op.execute({"outlet_events": _OutletEvents()})


def test_a_result_from_before_the_performance_check_still_emits_on_drift():
    from airflow.sdk import Asset

    from airflow_mlops.operators.operations import EmitDriftEventOperator

    asset = Asset("mlops.churn.drift")
    old = {"drift_detected": True, "drifted_features": ["plan"], "scores": {"plan": 0.5}, "psi_threshold": 0.2}
    op = EmitDriftEventOperator(task_id="emit", spec_path="/x.yaml", drift=old, outlets=[asset])
    events = _OutletEvents()
    assert op.execute({"outlet_events": events})["retrain_reasons"] == ["drift"]
    assert events[asset].extra["drifted_features"] == ["plan"]
