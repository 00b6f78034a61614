"""The serving app against hostile input and faults: no secret in answers or logs, slow clients,
foreign artifact locations, weak tokens, spoofed request ids, what the schema promises."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit

TOKEN = "hardening-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "Pw-d0nt-l3ak-9f8e7d"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _HalfBrokenTracking(BaseHTTPRequestHandler):
    """A tracking server that names v1 as champion, then drops the connection on every other call
    (the registry client's error then quotes the URL it called, userinfo included)."""

    calls: list[str] = []

    def do_GET(self) -> None:
        type(self).calls.append(self.path)
        if "registered-models/alias" in self.path:
            body = json.dumps({"model_version": {"name": "churn_classifier", "version": "1"}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.close_connection = True
            self.connection.close()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def broken_tracking() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    handler = type("Handler", (_HalfBrokenTracking,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://mlflow-user:{PASSWORD}@127.0.0.1:{server.server_port}", calls
    server.shutdown()
    server.server_close()


def _serve(tmp_path: Path, tracking_uri: str, *extra: str, env: dict[str, str] | None = None) -> tuple[Any, str]:
    """``airflow-mlops serve`` as its own process on a free port; returns (process, base URL)."""
    port = _free_port()
    environment = {
        **os.environ,
        "AIRFLOW_MLOPS_HOME": str(tmp_path / "home"),
        "AIRFLOW_MLOPS_SERVE_TOKEN": TOKEN,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        **(env or {}),
    }
    for name in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT", "MLFLOW_TRACKING_URI"):
        environment.pop(name, None)
    log = (tmp_path / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_mlops.cli", "serve", str(EXAMPLE_SPEC), "--tracking-uri", tracking_uri,
         "--port", str(port), "--poll-seconds", "0.3", "--no-prediction-log", *extra],
        env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process.log_path = log.name  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}: {Path(log.name).read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"serve did not start: {Path(log.name).read_text()[-3000:]}")


def _stop(process: Any) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return Path(process.log_path).read_text(errors="replace")


def _wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- 1. no credentials in answers or logs ----------------------------------------------------


def test_a_failing_registry_with_a_password_in_its_uri_leaks_it_nowhere(tmp_path, broken_tracking):
    tracking_uri, calls = broken_tracking
    process, url = _serve(tmp_path, tracking_uri, env={"MLFLOW_TRACKING_PASSWORD": "env-secret-7766554433"})
    try:
        _wait_for(lambda: any("model-versions/get" in c for c in calls), 60, "the load attempt")
        _wait_for(lambda: sum("alias" in c for c in calls) >= 4, 30, "a few alias polls")
        ready = httpx.get(f"{url}/health/ready")
        model = httpx.get(f"{url}/v1/model", headers=AUTH)
        predict = httpx.post(f"{url}/v1/predict", headers=AUTH, json={"instances": [{}]})
        metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
    finally:
        output = _stop(process)
    assert ready.status_code == 503 and ready.json() == {"status": "not ready", "reason": "model failed to load"}
    assert model.status_code == 503 and "model failed to load" in model.json()["detail"]
    assert "***@127.0.0.1" in model.json()["last_load_error"]  # authenticated: the redacted error
    assert predict.status_code == 503
    for text in (ready.text, model.text, predict.text, metrics, output):
        assert PASSWORD not in text and "env-secret-7766554433" not in text
    assert "not serving v1" in output and "***@127.0.0.1" in output  # the failure is logged, redacted
    assert "HTTP Request: GET" not in output  # httpx's per-poll INFO lines are off
    assert "airflow_mlops_serving_model_load_failures_total 1" in metrics


def test_every_log_record_is_redacted_at_its_making_even_through_a_handler_added_later(caplog):
    import logging

    from airflow_mlops.core.redaction import install_record_factory

    before = logging.getLogRecordFactory()
    install_record_factory(["known-secret-value"])
    try:
        late = logging.getLogger("test.hardening.late")
        late.propagate = True
        with caplog.at_level(logging.INFO, logger="test.hardening.late"):
            late.info("GET %s with %s", f"http://u:{PASSWORD}@mlflow/api", "known-secret-value")
            late.info("plain %s", "message")
    finally:
        logging.setLogRecordFactory(before)
    assert PASSWORD not in caplog.text and "known-secret-value" not in caplog.text
    assert "http://***@mlflow/api" in caplog.text
    assert caplog.records[1].args == ("message",)  # a record that needs nothing keeps its arguments
