"""Health alerts reach a real HTTP endpoint: from the health check task and from the deadline callback.

A local HTTP server receives what ``HealthCheckOperator`` (through ``HealthWebhookNotifier``) and
``MonitoringDeadlineNotifier`` (awaited as Airflow's triggerer awaits an ``AsyncCallback``) post.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from airflow_mlops.core.operations import health, incidents

pytestmark = pytest.mark.component

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def receiver(monkeypatch):
    received: list[dict] = []
    refuse = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if refuse.is_set():
                self.send_response(503)
            else:
                received.append({"path": self.path, "body": body})
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = {"conn_type": "http", "host": f"http://127.0.0.1:{server.server_address[1]}", "extra": {"endpoint": "hook"}}
    monkeypatch.setenv("AIRFLOW_CONN_HEALTH_HOOK", json.dumps(conn))
    yield received, refuse
    server.shutdown()


class Registry:
    """A champion promoted ten days ago, as the registry tells it."""

    def champion(self, name):
        return SimpleNamespace(version="2", creation_timestamp=None)

    def promotion_history(self, name):
        return [{"id": "m1", "to_version": "2", "at": (NOW - dt.timedelta(days=10)).isoformat()}]


def _operator(spec_path):
    from airflow_mlops.notifiers.webhook import HealthWebhookNotifier
    from airflow_mlops.operators.operations import HealthCheckOperator

    operator = HealthCheckOperator(task_id="health_check", spec_path=str(spec_path),
                                   notifiers=[HealthWebhookNotifier(conn_id="health_hook")])  # fmt: skip
    operator.registry = Registry  # type: ignore[method-assign]  # no MLflow server: the registry's answers
    return operator


def _context(run_id):
    ti = SimpleNamespace(dag_id="churn_monitoring", run_id=run_id, task_id="health_check", xcom_push=lambda **k: None)
    from airflow.sdk import DAG

    return {"ti": ti, "run_id": run_id, "dag": DAG("churn_monitoring", schedule=None)}  # templates render with it


@pytest.fixture
def aged_spec(tmp_path, mlops_home):
    from tests.conftest import EXAMPLE_SPEC

    text = EXAMPLE_SPEC.read_text().replace(
        "  psi_threshold: 0.2\n", "  psi_threshold: 0.2\n  alert_conn_id: health_hook\n  max_champion_age_days: 5\n"
    )
    path = tmp_path / "churn.yaml"
    path.write_text(text)
    return path


def test_the_health_check_posts_one_alert_per_incident_and_one_recovery(receiver, aged_spec):
    received, _ = receiver
    operator = _operator(aged_spec)
    first = operator.execute(_context("r1"))
    operator.execute(_context("r2"))  # still breached: nothing more
    assert first["opened"] == ["champion_age"] and len(first["messages"]) == 1
    (call,) = received
    body = call["body"]
    assert call["path"] == "/hook"
    assert body["alert"] == "champion_age" and body["state"] == "open" and body["pipeline"] == "churn"
    assert body["message_id"] == f"{body['incident_id']}:alert" and body["dag_id"] == "churn_monitoring"
    assert body["run_id"] == "r1" and "champion v2 has served for 10.0 days" in body["summary"]
    assert body["since"].startswith((NOW - dt.timedelta(days=10)).date().isoformat())

    aged_spec.write_text(aged_spec.read_text().replace("max_champion_age_days: 5", "max_champion_age_days: 30"))
    operator.execute(_context("r3"))
    assert [c["body"]["state"] for c in received] == ["open", "recovered"]
    assert received[1]["body"]["incident_id"] == body["incident_id"] and received[1]["body"]["closed_at"]


def test_a_refused_alert_fails_the_task_and_its_retry_sends_it_once(receiver, aged_spec):
    received, refuse = receiver
    operator = _operator(aged_spec)
    refuse.set()
    with pytest.raises(incidents.DeliveryError, match="kept for the retry"):
        operator.execute(_context("r1"))
    assert received == [] and "champion_age" in incidents.load("churn")["open"]
    refuse.clear()
    retried = operator.execute(_context("r1"))  # the retry of the same task
    assert retried["opened"] == [] and len(retried["messages"]) == 1
    assert [c["body"]["state"] for c in received] == ["open"]


def test_the_deadline_callback_posts_once_and_the_health_check_does_not_repeat_it(receiver, aged_spec):
    """As the triggerer runs an AsyncCallback: import the path, await the class called with its kwargs."""
    from airflow._shared.module_loading import import_string

    from airflow_mlops.factories.monitoring import build_monitoring_dag

    received, _ = receiver
    aged_spec.write_text(aged_spec.read_text().replace("max_champion_age_days: 5", "max_run_minutes: 15"))
    (alert,) = build_monitoring_dag(aged_spec).deadline
    callback = import_string(alert.callback.path)
    run = {"dag_id": "churn_monitoring", "run_id": "scheduled__1", "state": "failed", "queued_at": NOW.isoformat()}
    for _ in range(2):  # a second late run while the incident is open: nothing sent
        asyncio.run(_await(callback(**alert.callback.kwargs, context={"dag_run": run, "deadline": {}})))
    (call,) = received
    assert call["body"]["alert"] == health.LATE and call["body"]["state"] == "open"
    assert call["body"]["run_id"] == "scheduled__1"
    assert "has not succeeded 15 min after it was queued" in call["body"]["summary"]

    operator = _operator(aged_spec)
    operator.watched_task_ids = ["drift_check"]  # unknown states (no supervisor here): not failed
    result = operator.execute(_context("r2"))
    assert result["cleared"] == [health.LATE]
    assert [c["body"]["state"] for c in received] == ["open", "recovered"]  # the alert not posted a second time


async def _await(notifier):
    await notifier
