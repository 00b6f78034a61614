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

from airflow_mlops.core.operations.prediction_log import labels as log_labels
from tests.component.serving import test_app as test_serving
from tests.component.serving.test_app import _app, _rows
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

TOKEN = test_serving.TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "Pw-d0nt-l3ak-9f8e7d"
served = test_serving.served  # a champion (v1) and a v2 in a SQLite registry, for this module


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


# -- 2. connection limits and timeouts --------------------------------------------------------


def _stalled(url: str, kind: str) -> socket.socket:
    """A socket that sends part of a request (per ``kind``) and then nothing."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    if kind == "half_head":
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: app")
    elif kind == "half_body":
        sock.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Length: 5000\r\n\r\n{\"instances\": [".encode())  # fmt: skip
    return sock  # "idle": connected, nothing sent


def _closed_by_server(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing ``sock`` within ``seconds``; None if it kept it open."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def test_slow_and_idle_clients_are_cut_off_and_never_block_other_clients(tmp_path):
    process, url = _serve(tmp_path, f"sqlite:///{tmp_path}/empty.db", "--header-timeout", "1.5",
                          "--body-timeout", "1.5", "--max-header-bytes", "4096")  # fmt: skip
    kinds = ["idle", "half_head", "half_body"] * 70
    answers: list[int] = []
    stop = threading.Event()

    def legitimate() -> None:  # new connections and one kept alive, all the time the stalled sockets are held
        with httpx.Client(base_url=url, headers=AUTH, timeout=5) as kept:
            while not stop.is_set():
                answers.append(httpx.get(f"{url}/health/live", timeout=5).status_code)
                answers.append(kept.get("/metrics").status_code)
                answers.append(kept.post("/v1/predict", json={"instances": [{}]}).status_code)  # no model: 503
                big = b'{"instances": [' + b" " * 300_000 + b"{}]}"  # many reads, far over the head limit
                answers.append(kept.post("/v1/predict", content=big).status_code)

    try:
        opened = time.monotonic()
        stalled = [_stalled(url, kind) for kind in kinds]
        client = threading.Thread(target=legitimate)
        client.start()
        results = [_closed_by_server(stalled[0], 1.5 + 20)]
        first_closed = time.monotonic() - opened
        results += [_closed_by_server(sock, max(0.1, 1.5 + 20 - (time.monotonic() - opened))) for sock in stalled[1:]]
        huge = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        huge.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 8192)
        too_large = _closed_by_server(huge, 5)
        patient = _stalled(url, "half_body")  # slow, but within the limits: answered
        for _ in range(3):
            time.sleep(0.2)
            patient.sendall(b" " * 10)
        patient.sendall(b" " * (5000 - 15 - 30 - 4) + b"{}]}")
        patient.settimeout(5)
        patient_answer = patient.recv(4096)  # "no model", and the connection stays open
        patient.close()
        time.sleep(0.3)
        stop.set()
        client.join(timeout=30)
        metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
    finally:
        stop.set()
        _stop(process)
    assert all(r is not None for r in results), f"{sum(r is None for r in results)} stalled sockets still open"
    assert first_closed >= 1.4  # not before its time
    for kind, received in zip(kinds, results, strict=True):
        assert received.startswith(b"HTTP/1.1 408") if kind != "half_body" else received == b"", kind
    assert too_large is not None and too_large.startswith(b"HTTP/1.1 431")
    assert len(answers) >= 6 and set(answers) == {200, 503}  # 503: the registry is empty, the answer came
    assert answers.count(503) == len(answers) // 2
    assert patient_answer.startswith(b"HTTP/1.1 503")
    assert 'airflow_mlops_serving_connections_closed_total{limit="head"} 140' in metrics
    assert 'airflow_mlops_serving_connections_closed_total{limit="body"} 70' in metrics


# -- 7. smaller ones ---------------------------------------------------------------------------


def _fake_app(**overrides: Any) -> Any:
    """A ServingApp whose registry and loader are plain functions (no model needed)."""
    from types import SimpleNamespace

    from airflow_mlops.serving.app import ServingApp
    from airflow_mlops.serving.config import ServeConfig
    from airflow_mlops.serving.payload import InputSchema
    from airflow_mlops.spec import load_spec

    config = ServeConfig(spec_path=str(EXAMPLE_SPEC), tracking_uri="sqlite:///unused.db", tokens=(TOKEN,), **overrides)
    versions: list[Any] = []

    def load(version: str | None) -> Any:
        if version == "2":
            raise RuntimeError(f"cannot download from http://u:{PASSWORD}@mlflow/v2")
        return SimpleNamespace(name="churn_classifier", version=version, describe=lambda: {"model_version": version})

    def probe() -> str | None:
        value = versions.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    app = ServingApp(InputSchema.from_spec(load_spec(EXAMPLE_SPEC)), config, load=load, probe=probe)
    return app, versions


def _run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


def test_last_load_error_clears_when_the_alias_returns_and_failures_are_counted():
    from airflow_mlops.serving.inprocess import call

    app, versions = _fake_app()
    versions += [ConnectionError(f"http://u:{PASSWORD}@mlflow down"), "1", "2", "1"]
    assert not _run(app.refresh()) and app.not_ready == "registry unreachable" and app.poll_failures == 1
    assert PASSWORD not in app.poll_error
    assert _run(app.refresh()) and app.model.version == "1" and app.not_ready is None and app.poll_error is None
    assert not _run(app.refresh()) and app.model.version == "1"  # v2 does not load: v1 keeps serving
    assert app.load_error.startswith("v2: RuntimeError: cannot download from http://***@mlflow")
    assert app.load_failures == 1
    assert not _run(app.refresh())  # the alias is back on v1
    assert app.load_error is None
    _, _, body = _run(call(app, "GET", "/v1/model", headers=AUTH))
    assert json.loads(body)["last_load_error"] is None
    _, _, metrics = _run(call(app, "GET", "/metrics", headers=AUTH))
    assert b"airflow_mlops_serving_model_load_failures_total 1\n" in metrics
    assert b"airflow_mlops_serving_registry_poll_failures_total 1\n" in metrics


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ([], None),
        ([None], "no champion"),
        ([RuntimeError("x")], "registry unreachable"),
        (["2"], "model failed to load"),
    ],
)
def test_readiness_names_only_the_reason_class(given, reason):
    from airflow_mlops.serving.inprocess import call

    app, versions = _fake_app()
    versions += given
    if given:
        _run(app.refresh())
    status, _, body = _run(call(app, "GET", "/health/ready"))
    assert status == 503 and json.loads(body) == {"status": "not ready", "reason": reason or "starting"}


def test_a_short_token_is_refused_naming_the_variable_never_the_value():
    from airflow_mlops.serving.config import ServeConfig

    config = ServeConfig(spec_path="x", tracking_uri="x", tokens=("a-long-enough-token-123", "short-tok"))
    with pytest.raises(RuntimeError, match=r"AIRFLOW_MLOPS_SERVE_TOKEN: token 2 of 2 is shorter than 16") as info:
        config.check()
    assert "short-tok" not in str(info.value)
    ServeConfig(spec_path="x", tracking_uri="x", tokens=("x" * 16,)).check()
    ServeConfig(spec_path="x", tracking_uri="x", require_token=False).check()


def test_the_serve_command_refuses_a_short_token(monkeypatch, capsys, tmp_path):
    import uvicorn

    from airflow_mlops import cli

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server started with a short token")

    monkeypatch.setattr(uvicorn, "run", started)
    monkeypatch.setenv("AIRFLOW_MLOPS_SERVE_TOKEN", "change-me")
    assert cli.main(["serve", str(EXAMPLE_SPEC), "--tracking-uri", f"sqlite:///{tmp_path}/x.db"]) == 2
    err = capsys.readouterr().err
    assert "AIRFLOW_MLOPS_SERVE_TOKEN" in err and "shorter than 16" in err and "change-me" not in err


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("runs:/abc123/onnx/model.onnx", True),
        ("runs:/other-run/onnx/model.onnx", False),
        ("runs:/abc123/../other/onnx/model.onnx", False),
        ("mlflow-artifacts:/3/abc123/artifacts/onnx/model.onnx", True),
        ("mlflow-artifacts://mlflow.internal:5000/3/abc/model.onnx", True),
        ("mlflow-artifacts://evil.example/3/abc/model.onnx", False),
        ("s3://artifacts/3/abc123/artifacts/onnx/model.onnx", True),  # the run's artifact location
        ("s3://artifacts/3/abc123/artifactsX/model.onnx", False),
        ("s3://someone-else/model.onnx", False),
        ("file:///srv/root/churn/model.onnx", True),  # the artifact root, as file://
        ("/srv/root/churn/model.onnx", True),
        ("/srv/root/../etc/passwd", False),
        ("/srv/rootless/model.onnx", False),
        ("file:///etc/passwd", False),
        ("/etc/passwd", False),
        ("http://169.254.169.254/latest/meta-data", False),
    ],
)
def test_onnx_uris_outside_the_registrys_artifact_locations_are_refused(uri, allowed):
    from airflow_mlops.serving.model import ModelLoadError, check_artifact_location

    def check() -> None:
        check_artifact_location(uri, "abc123", lambda: "s3://artifacts/3/abc123/artifacts", "/srv/root",
                                "http://user:pw@mlflow.internal:5000")  # fmt: skip

    if allowed:
        check()
    else:
        with pytest.raises(ModelLoadError, match="outside the registry's artifact locations"):
            check()


def test_a_version_whose_onnx_uri_points_elsewhere_is_never_fetched(served, tmp_path):
    import shutil

    from airflow_mlops.serving.model import ModelLoadError

    spec, registry = served
    client = registry.client
    name = spec.registered_model_name
    original = client.get_model_version(name, "2").tags["onnx_uri"]
    graph = Path(client.download_artifacts(client.get_model_version(name, "2").run_id, "onnx", str(tmp_path)))
    outside = tmp_path / "elsewhere" / "model.onnx"  # a real, loadable graph, outside the registry's stores
    outside.parent.mkdir()
    shutil.copy(graph / "model.onnx", outside)
    client.set_model_version_tag(name, "2", "onnx_uri", outside.as_uri())
    try:
        app = _app(served, log_predictions=False)
        with pytest.raises(ModelLoadError, match=r"v2: its onnx_uri 'file://.*' is outside the registry's"):
            app._load("2")
        client.set_model_version_tag(name, "2", "onnx_uri", "file:///etc/passwd")
        with pytest.raises(ModelLoadError, match="outside the registry's artifact locations"):
            app._load("2")
    finally:
        client.set_model_version_tag(name, "2", "onnx_uri", original)
    assert _app(served, log_predictions=False)._load("2").version == "2"  # its own run's graph still loads


def test_request_ids_are_the_servers_and_the_clients_id_is_kept_apart(served):
    import pandas as pd

    from airflow_mlops import layout
    from airflow_mlops.core.io import tables
    from airflow_mlops.serving.inprocess import call

    spec, _ = served
    app = _app(served, log_flush_rows=1_000_000, log_flush_seconds=3600)
    body = json.dumps({"instances": _rows(3)}).encode()
    marks = [{"X-Request-ID": "order-7781"}, {"X-Request-ID": "order-7781"}, {"X-Request-ID": "a b"},
             {"X-Request-ID": "x" * 129}, {"X-Request-ID": "caf\u00e9"}, {}]  # fmt: skip

    async def scenario() -> list[Any]:
        await app.startup()
        try:
            return [await call(app, "POST", "/v1/predict", body, {**AUTH, **m}) for m in marks]
        finally:
            await app.shutdown()

    answers = _run(scenario())
    assert [a[0] for a in answers] == [200] * 6
    parsed = [json.loads(a[2]) for a in answers]
    ids = [p["request_id"] for p in parsed]
    assert len(set(ids)) == 6 and "order-7781" not in ids
    assert [a[1]["x-request-id"] for a in answers] == ids  # the header names the server's id too
    assert [p.get("client_request_id") for p in parsed] == ["order-7781", "order-7781", None, None, None, None]
    assert ["client_request_id_error" in p for p in parsed] == [False, False, True, True, True, False]
    log = pd.concat([tables.read_table(u) for u in app.prediction_logger.files])
    log = log[log["request_id"].isin(ids)]
    assert len(log) == 18 and not log.duplicated(["request_id", "row"]).any()
    assert log.groupby("request_id")["client_request_id"].first().reindex(ids).tolist()[:2] == ["order-7781"] * 2
    assert log["client_request_id"].isna().sum() == 12
    # A delayed label for the first request joins its rows only, whoever else sent the same header.
    labels = Path(layout.labels_dir(spec.name))
    labels.mkdir(parents=True, exist_ok=True)
    label_file = labels / "hardening-by-request.parquet"
    pd.DataFrame({"request_id": [ids[0]] * 3, "row": [0, 1, 2], spec.data.label: [1, 0, 1]}).to_parquet(label_file)
    try:
        import datetime as dt

        joined, _ = log_labels.labeled_predictions(spec, "1", dt.date.today() - dt.timedelta(days=1))
    finally:
        label_file.unlink()
    mine = joined[joined["request_id"].isin(ids)]
    assert set(mine["request_id"]) == {ids[0]} and sorted(mine["row"]) == [0, 1, 2]


def test_wrong_methods_get_405_with_allow_and_health_answers_head(served):
    from airflow_mlops.serving.inprocess import call

    app = _app(served, log_predictions=False)

    async def scenario() -> dict[str, Any]:
        await app.startup()
        try:
            return {
                "get_predict": await call(app, "GET", "/v1/predict", headers=AUTH),
                "delete_model": await call(app, "DELETE", "/v1/model", headers=AUTH),
                "head_live": await call(app, "HEAD", "/health/live"),
                "head_ready": await call(app, "HEAD", "/health/ready"),
                "post_live": await call(app, "POST", "/health/live"),
                "metrics_no_token": await call(app, "GET", "/metrics"),
                "openapi": await call(app, "GET", "/openapi.json"),
            }
        finally:
            await app.shutdown()

    r = _run(scenario())
    assert r["get_predict"][0] == 405 and r["get_predict"][1]["allow"] == "POST"
    assert r["delete_model"][0] == 405 and r["delete_model"][1]["allow"] == "GET"
    assert r["post_live"][0] == 405 and r["post_live"][1]["allow"] == "GET, HEAD"
    assert r["head_live"][:1] == (200,) and r["head_live"][2] == b""
    assert r["head_ready"][0] == 200 and r["head_ready"][2] == b""
    assert r["metrics_no_token"][0] == 401
    document = json.loads(r["openapi"][2])
    assert "401" in document["paths"]["/metrics"]["get"]["responses"]
    assert {"get", "head"} <= set(document["paths"]["/health/ready"])
    # Every secured operation in the schema is refused without a token, every open one is not.
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            status = _run(call(app, method.upper(), path))[0]
            assert (status == 401) == bool(operation.get("security")), (method, path, status)


def test_the_row_limits_the_schema_states_are_the_ones_the_app_enforces(served):
    from airflow_mlops.serving.inprocess import call

    app = _app(served, log_predictions=False, max_rows=3)
    _run(app.refresh())
    document = app._openapi
    shapes = json.loads(document)["components"]["schemas"]["PredictRequest"]["oneOf"]
    limits = {
        "instances": shapes[0]["properties"]["instances"],
        "dataframe_records": shapes[1]["properties"]["dataframe_records"],
        "dataframe_split": shapes[2]["properties"]["dataframe_split"]["properties"]["data"],
        "inputs": shapes[3]["properties"]["inputs"]["properties"]["plan"],
    }
    assert all((limit["minItems"], limit["maxItems"]) == (1, 3) for limit in limits.values())
    columns = list(_rows(1)[0])

    def body(shape: str, rows: list[dict]) -> bytes:
        if shape in ("instances", "dataframe_records"):
            return json.dumps({shape: rows}).encode()
        if shape == "dataframe_split":
            return json.dumps({shape: {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}).encode()
        return json.dumps({shape: {c: [r[c] for r in rows] for c in columns}}).encode()

    for shape in limits:
        got = [_run(call(app, "POST", "/v1/predict", body(shape, _rows(n)), AUTH))[0] for n in (0, 1, 3, 4)]
        assert got == [422, 200, 200, 422], shape


def test_the_serve_command_raises_a_low_open_files_limit_within_the_hard_limit(monkeypatch, capsys):
    import resource

    from airflow_mlops import cli

    limits = {"now": (1024, 8192)}
    monkeypatch.setattr(resource, "getrlimit", lambda _: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: limits.update(now=value))
    cli._raise_open_files_limit(4096 + 256)
    assert limits["now"] == (4352, 8192) and capsys.readouterr().err == ""
    limits["now"] = (1024, 2048)
    cli._raise_open_files_limit(4096 + 256)
    assert limits["now"] == (2048, 2048) and "open files limit is 2048" in capsys.readouterr().err
