"""The drift alert reaches a webhook as JSON, with the run's identity and the event's scores."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from airflow_mlops.notifiers.webhook import DriftWebhookNotifier, webhook_url

pytestmark = pytest.mark.unit


@pytest.fixture
def receiver():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()


def _context(event: dict) -> dict:
    ti = SimpleNamespace(dag_id="churn_monitoring", run_id="r1", task_id="emit_drift_event")
    ti.xcom_pull = lambda task_ids: event if task_ids == "emit_drift_event" else None
    return {"ti": ti}


def test_drift_alert_is_posted_to_the_connections_url(receiver, monkeypatch):
    port, received = receiver
    conn = {"conn_type": "http", "host": f"http://127.0.0.1:{port}", "extra": {"endpoint": "alerts/mlops"}}
    monkeypatch.setenv("AIRFLOW_CONN_DRIFT_HOOK", json.dumps(conn))
    event = {"drifted_features": ["usage_gb"], "scores": {"usage_gb": 3.1}, "model_version": "2"}
    DriftWebhookNotifier(conn_id="drift_hook").notify(_context(event))
    (call,) = received
    assert call["path"] == "/alerts/mlops"
    assert call["body"] == {"alert": "drift", "dag_id": "churn_monitoring", "run_id": "r1",
                            "task_id": "emit_drift_event", **event}  # fmt: skip


def test_the_alert_names_why_retraining_was_requested(receiver, monkeypatch):
    port, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_DRIFT_HOOK", json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}"}))
    event = {"drifted_features": [], "retrain_reasons": ["performance_decay"], "performance_decay": True}
    DriftWebhookNotifier(conn_id="drift_hook").notify(_context(event))
    (call,) = received
    assert call["body"]["alert"] == "performance_decay" and call["body"]["performance_decay"] is True


def test_a_failing_webhook_raises_so_airflow_logs_it(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9"}))
    with pytest.raises(Exception, match=r"(?i)connect"):
        DriftWebhookNotifier(conn_id="dead_hook", timeout_seconds=2).notify(_context({}))


def test_url_from_connection_parts():
    parts = SimpleNamespace(conn_id="c", host="hooks.example", schema="https", port=8443, extra_dejson={})
    assert webhook_url(parts) == "https://hooks.example:8443"
    with pytest.raises(ValueError, match="connection 'c' has no host"):
        webhook_url(SimpleNamespace(conn_id="c", host="", schema=None, port=None, extra_dejson={}))


def test_monitoring_dag_attaches_the_alert_only_when_the_spec_names_a_connection(tmp_path):
    from airflow_mlops.factories.monitoring import build_monitoring_dag
    from tests.conftest import EXAMPLE_SPEC

    plain = build_monitoring_dag(EXAMPLE_SPEC).get_task("emit_drift_event")
    assert not plain.on_success_callback
    text = EXAMPLE_SPEC.read_text().replace(
        "  psi_threshold: 0.2\n", "  psi_threshold: 0.2\n  alert_conn_id: drift_hook\n"
    )
    spec_path = tmp_path / "churn.yaml"
    spec_path.write_text(text)
    task = build_monitoring_dag(spec_path).get_task("emit_drift_event")
    (notifier,) = task.on_success_callback
    assert isinstance(notifier, DriftWebhookNotifier) and notifier.conn_id == "drift_hook"


def test_a_health_message_is_posted_with_what_since_when_and_its_id(receiver, monkeypatch):
    from airflow_mlops.notifiers.webhook import HealthWebhookNotifier

    port, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_HEALTH_HOOK", json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}"}))
    incident = {"id": "silence-20261201T080000", "check": "silence", "summary": "no prediction logged for 7.0 h",
                "since": "2026-12-01T01:00:00+00:00", "opened_at": "2026-12-01T08:00:00+00:00",
                "opened_by": "r1"}  # fmt: skip
    message = {"id": "silence-20261201T080000:alert", "kind": "alert", "pipeline": "churn", "incident": incident,
               "at": "2026-12-01T08:00:00+00:00", "sent_to": []}  # fmt: skip
    notifier = HealthWebhookNotifier(conn_id="health_hook")
    assert notifier.delivery_key == "webhook:health_hook"
    notifier.notify({**_context({}), "mlops_alert": message})
    (call,) = received
    assert call["body"] == {"alert": "silence", "state": "open", "message_id": "silence-20261201T080000:alert",
                            "incident_id": "silence-20261201T080000", "pipeline": "churn",
                            "summary": "no prediction logged for 7.0 h", "since": "2026-12-01T01:00:00+00:00",
                            "opened_at": "2026-12-01T08:00:00+00:00", "closed_at": None,
                            "at": "2026-12-01T08:00:00+00:00", "dag_id": "churn_monitoring", "run_id": "r1",
                            "task_id": "emit_drift_event"}  # fmt: skip
    with pytest.raises(ValueError, match="mlops_alert"):
        notifier.notify(_context({}))


def test_the_health_check_and_its_deadline_exist_only_when_the_spec_turns_them_on(tmp_path):
    from datetime import timedelta

    from airflow_mlops.factories.monitoring import build_monitoring_dag
    from airflow_mlops.notifiers.webhook import HealthWebhookNotifier
    from tests.conftest import EXAMPLE_SPEC

    plain = build_monitoring_dag(EXAMPLE_SPEC)
    assert "health_check" not in plain.task_ids and not plain.deadline
    spec_path = tmp_path / "churn.yaml"
    spec_path.write_text(EXAMPLE_SPEC.read_text().replace(
        "  psi_threshold: 0.2\n", "  psi_threshold: 0.2\n  alert_conn_id: hook\n  max_silence_hours: 0.5\n"
        "  max_run_minutes: 20\n"))  # fmt: skip
    dag = build_monitoring_dag(spec_path)
    task = dag.get_task("health_check")
    assert task.trigger_rule == "all_done" and task.upstream_task_ids == {"drift_check"}
    (notifier,) = task.notifiers
    assert isinstance(notifier, HealthWebhookNotifier) and notifier.conn_id == "hook"
    (deadline,) = dag.deadline
    assert deadline.interval == timedelta(minutes=20)
    assert deadline.callback.path == "airflow_mlops.notifiers.health.MonitoringDeadlineNotifier"
    assert deadline.callback.kwargs == {"pipeline": "churn", "max_run_minutes": 20.0, "conn_id": "hook"}


@pytest.mark.parametrize("status", [404, 503])
def test_a_refusing_webhook_fails_without_its_secret_url_in_the_error(status):
    from airflow_mlops.notifiers.webhook import WebhookError, post_json

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/services/T000/B000/SECRETTOKEN123"
    try:
        with pytest.raises(WebhookError) as raised:
            post_json(url, {"alert": "silence"}, 5.0, "ops_webhook")
    finally:
        server.shutdown()
    text = str(raised.value)
    assert f"connection 'ops_webhook' answered {status}" in text and "SECRETTOKEN123" not in text
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no chained httpx error


def test_an_unreachable_webhook_fails_without_its_url_in_the_error():
    from airflow_mlops.notifiers.webhook import WebhookError, post_json

    with pytest.raises(WebhookError, match="not reached: ConnectError") as raised:
        post_json("http://127.0.0.1:9/hooks/SECRETTOKEN123", {}, 2.0, "ops_webhook")
    assert "SECRETTOKEN123" not in str(raised.value)
