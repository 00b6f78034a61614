"""Silence alerts under a real Airflow 3 scheduler: one alert when predictions stop, one recovery when they resume.

One stack (``airflow standalone`` + ``mlflow server``) with the churn pipeline alone, its monitoring
DAG on a per-minute cron with ``max_silence_hours: 0.03`` (108 s) and ``alert_conn_id`` pointing
at an HTTP server in this process. A labeled batch lands -> training -> champion v1; the serving
app answers a few rows (their log is written when it stops); then nothing is predicted: the
calendar monitoring runs skip the drift check (nothing to read) and their health check opens the
``silence`` incident, whose alert the webhook receives once, not once per run. The serving app
starts again and answers a request every 10 s: one recovery, and nothing more while it answers.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.stack import Stack, StackConfig, single_pipeline_project

pytestmark = pytest.mark.integration

SILENCE_HOURS = 0.03  # 108 s: longer than training's end to the first served rows, short enough to wait for


class Webhook:
    """An HTTP endpoint that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def health(self) -> list[dict]:
        return [body for body in self.received if body.get("alert") == "silence"]

    def wait_for(self, state: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [b for b in self.health() if b["state"] == state]
            if found:
                return found[0]
            time.sleep(2)
        raise TimeoutError(f"no '{state}' silence message within {timeout:.0f}s; received {self.received}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    started = time.monotonic()
    root = tmp_path_factory.mktemp("alerts")
    dags, pipelines = single_pipeline_project(root / "project")
    spec_file = pipelines / "churn.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["monitoring"].update(cron="* * * * *", max_silence_hours=SILENCE_HOURS, alert_conn_id="health_hook")
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    webhook = Webhook()
    hook = json.dumps({"conn_type": "http", "host": webhook.url})
    environment = dict(os.environ)
    config = StackConfig(root=root / "runtime", dags_folder=dags, pipelines_folder=pipelines, airflow_port=8721,
                         mlflow_port=5721, extra_env={"AIRFLOW_CONN_HEALTH_HOOK": hook})  # fmt: skip
    stack = Stack(config).start()
    demo = DemoLoop(stack, rows=1000, say=print)
    try:
        yield stack, demo, webhook
    finally:
        demo.stop_serving()
        stack.stop()
        os.environ.clear()
        os.environ.update(environment)
        webhook.server.shutdown()
        print(f"alerts stack: {time.monotonic() - started:.0f}s from start to stop")


def test_silence_raises_one_alert_and_predicting_again_one_recovery(world):
    stack, demo, webhook = world
    demo._prepare()
    demo._first_training()
    demo._serve()  # a champion, and predictions: not silent
    demo.stop_serving()  # its log is written; from here on nothing is predicted
    stopped = time.monotonic()
    assert webhook.health() == []

    alert = webhook.wait_for("open", timeout=420)
    print(f"silence alert {time.monotonic() - stopped:.0f}s after the last prediction: {alert['summary']}")
    assert alert["pipeline"] == "churn" and alert["dag_id"] == "churn_monitoring"
    assert alert["message_id"] == f"{alert['incident_id']}:alert"
    assert "no prediction logged for" in alert["summary"]
    runs_before = len(demo.client.dag_runs("churn_monitoring"))
    _wait_for_more_runs(demo, "churn_monitoring", runs_before + 2, timeout=300)  # the silence holds: two more runs
    assert [b["state"] for b in webhook.health()] == ["open"]  # one alert per incident, not one per run

    note = _latest_note(demo, "churn_monitoring")
    assert note.startswith("ALERT: silence since"), note

    demo._serve()  # predictions again, and they go on: the app answers a request every 10 s (its log: every 5 s)
    stop = threading.Event()
    traffic = threading.Thread(target=_keep_predicting, args=(demo, stop), daemon=True)
    traffic.start()
    try:
        recovered = webhook.wait_for("recovered", timeout=300)
        assert recovered["incident_id"] == alert["incident_id"] and recovered["closed_at"]
        runs_after = len(demo.client.dag_runs("churn_monitoring"))
        _wait_for_more_runs(demo, "churn_monitoring", runs_after + 2, timeout=300)  # not silent: nothing more
        assert [b["state"] for b in webhook.health()] == ["open", "recovered"]
    finally:
        stop.set()
        traffic.join(timeout=30)
        demo.stop_serving()

    import httpx

    page = httpx.get(f"{stack.config.airflow_url}/mlops/api/pipelines/churn/page", headers=demo.client.http.headers,
                     timeout=60).json()  # fmt: skip
    assert page["incidents"]["open"] == [] and page["incidents"]["closed"][-1]["id"] == alert["incident_id"]


def _keep_predicting(demo: DemoLoop, stop: threading.Event) -> None:
    import httpx

    served = demo.result.serving or {}
    headers = {"Authorization": f"Bearer {served['token']}"}
    while not stop.wait(10):
        try:
            body = {"instances": served["rows"][:1]}
            httpx.post(f"{served['url']}/v1/predict", json=body, headers=headers, timeout=10)
        except httpx.HTTPError as exc:  # the assertions tell whether it mattered
            print(f"a prediction failed: {exc!r}")


def _wait_for_more_runs(demo: DemoLoop, dag_id: str, count: int, timeout: float) -> None:
    """Until ``dag_id`` has ``count`` runs and none is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = demo.client.dag_runs(dag_id)
        if len(runs) >= count and not any(r["state"] in ("queued", "running") for r in runs):
            return
        time.sleep(3)
    raise TimeoutError(f"{dag_id} did not reach {count} finished runs in {timeout:.0f}s")


def _latest_note(demo: DemoLoop, dag_id: str) -> str:
    runs = [r for r in demo.client.dag_runs(dag_id) if r["state"] == "success"]
    latest = max(runs, key=lambda r: r.get("end_date") or "")
    return str(latest.get("note") or "")
