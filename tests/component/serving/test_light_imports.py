"""Serving stays light: a serving process imports neither scikit-learn, pandas, SciPy, MLflow,
Great Expectations nor Airflow, from the import of the app to its first answered request.

The started-app test runs the serve command in a fresh interpreter against MLflow's own REST
server (its Flask app, in a thread of this process, on the module's SQLite registry): the
champion's graph is read from its run's local artifact location, a second version's through
the server's artifact proxy (``mlflow-artifacts:``), the production shape.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_mlops.core.io import tables
from airflow_mlops.serving.registry_rest import RegistryError, RestRegistry, serves_over_rest
from tests.component.serving import test_app as test_serving
from tests.component.serving.test_app import TOKEN, _rows
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

served = test_serving.served  # a champion (v1) and a v2 in a SQLite registry, for this module
HEAVY = ("sklearn", "pandas", "scipy", "mlflow", "great_expectations", "airflow")

# What `airflow-mlops serve` does, in a fresh interpreter, minus the socket: the CLI checks its
# arguments and hands uvicorn the factory; this uvicorn.run builds the app from the factory as
# a worker does, starts it (first champion load), answers a request, loads v2, shuts it down.
SERVE_WITHOUT_A_SOCKET = """
import asyncio, json, sys
import uvicorn
from uvicorn.importer import import_from_string
from airflow_mlops import cli
from airflow_mlops.serving.inprocess import call

HEAVY, TOKEN, BODY = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
seen = {}


def run(target, factory, **options):
    import uvloop  # the loop the serve command asks for
    assert factory and options["loop"] == "uvloop"
    app = import_from_string(target)()

    async def serve():
        await app.startup()
        status, _, body = await call(app, "POST", "/v1/predict", BODY, {"Authorization": f"Bearer {TOKEN}"})
        seen.update(status=status, answer=json.loads(body), load_error=app.load_error)
        seen["v2"] = (await asyncio.to_thread(app._load, "2")).version
        await app.shutdown()

    uvloop.run(serve())


uvicorn.run = run
seen["exit"] = cli.main(["serve", sys.argv[4], "--tracking-uri", sys.argv[5]])
seen["heavy"] = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps(seen))
"""


@pytest.fixture
def tracking_server(served, tmp_path, monkeypatch) -> Iterator[tuple[str, list[str]]]:
    """MLflow's REST server on the module's registry (URL, paths it was asked), its artifact
    proxy storing under ``tmp_path / "proxied"``."""
    from werkzeug.serving import make_server

    _, registry = served
    tracking_uri = registry.tracking_uri
    for var in ("_MLFLOW_SERVER_FILE_STORE", "_MLFLOW_SERVER_REGISTRY_STORE"):
        monkeypatch.setenv(var, tracking_uri)
    monkeypatch.setenv("_MLFLOW_SERVER_SERVE_ARTIFACTS", "true")
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", str(tmp_path / "proxied"))
    from mlflow.server import app as mlflow_app

    asked: list[str] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        asked.append(environ["PATH_INFO"])
        return mlflow_app(environ, start_response)

    server = make_server("127.0.0.1", 0, recording, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", asked
    finally:
        server.shutdown()
        thread.join(10)


def test_the_serving_app_imports_no_sklearn_pandas_or_scipy():
    heavy = "('sklearn', 'pandas', 'scipy')"
    probe = f"import sys, airflow_mlops.serving.app; print([m for m in {heavy} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_a_started_serving_process_imports_none_of_the_heavy_libraries(served, tracking_server, tmp_path):
    spec, registry = served
    url, asked = tracking_server
    name = spec.registered_model_name
    client = registry.client
    original = client.get_model_version(name, "2").tags["onnx_uri"]
    graph = Path(client.download_artifacts(client.get_model_version(name, "2").run_id, "onnx", str(tmp_path)))
    (tmp_path / "proxied" / "graphs").mkdir(parents=True)
    shutil.copy(graph / "model.onnx", tmp_path / "proxied" / "graphs" / "model.onnx")
    client.set_model_version_tag(name, "2", "onnx_uri", "mlflow-artifacts:/graphs/model.onnx")
    try:
        body = json.dumps({"instances": _rows(5)})
        command = [sys.executable, "-c", SERVE_WITHOUT_A_SOCKET, json.dumps(HEAVY), TOKEN, body, str(EXAMPLE_SPEC), url]
        env = {**os.environ, "AIRFLOW_MLOPS_SERVE_TOKEN": TOKEN}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    finally:
        client.set_model_version_tag(name, "2", "onnx_uri", original)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200 and seen["load_error"] is None, seen
    assert seen["answer"]["model_version"] == "1" and len(seen["answer"]["predictions"]) == 5
    assert seen["v2"] == "2" and seen["exit"] == 0
    assert "/api/2.0/mlflow-artifacts/artifacts/graphs/model.onnx" in asked  # v2 came through the proxy
    assert seen["heavy"] == []
    # ... and its prediction log (pyarrow kept off pandas) holds the request's rows as answered.
    files = test_serving._log_files(spec)
    assert len(files) == 1
    log = tables.read_table(files[0])
    assert log["customer_id"].tolist() == [r["customer_id"] for r in _rows(5)]
    assert log["prediction"].tolist() == seen["answer"]["predictions"]
    assert set(log["request_id"]) == {seen["answer"]["request_id"]} and log["client_request_id"].isna().all()


# -- the REST reads, answer by answer ----------------------------------------------------------


def _registry(answers: list[tuple[int, Any]], seen: list[str]) -> RestRegistry:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        status, body = answers.pop(0)
        return httpx.Response(status, content=body) if isinstance(body, bytes) else httpx.Response(status, json=body)

    return RestRegistry("http://mlflow.test:5000/prefix", transport=httpx.MockTransport(handler))


def test_rest_reads_retry_transient_answers_and_keep_mlflows_error_text(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    version = {"name": "m", "version": "3", "run_id": "r1", "tags": [{"key": "onnx_uri", "value": "runs:/r1/x.onnx"}]}
    seen: list[str] = []
    reader = _registry([(503, {}), (502, {}), (200, {"model_version": version})], seen)
    record = reader.champion("m")
    assert record is not None and (record.version, record.run_id) == ("3", "r1")
    assert record.tags == {"onnx_uri": "runs:/r1/x.onnx"}
    alias_url = "http://mlflow.test:5000/prefix/api/2.0/mlflow/registered-models/alias?name=m&alias=champion"
    assert seen == [alias_url] * 3  # two transient answers retried

    no_alias = {"error_code": "INVALID_PARAMETER_VALUE", "message": "Registered model alias champion not found."}
    assert _registry([(400, no_alias)], []).champion("m") is None
    missing = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Model Version (name=m, version=9) not found"}
    with pytest.raises(RegistryError, match=r"^RESOURCE_DOES_NOT_EXIST: Model Version \(name=m, version=9\) not found"):
        _registry([(404, missing)], []).version("m", "9")
    denied = {"error_code": "PERMISSION_DENIED", "message": "no read permission"}
    with pytest.raises(RegistryError, match="PERMISSION_DENIED: no read permission"):
        _registry([(403, denied)], []).champion("m")  # not "no champion": the app keeps what it serves
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    with pytest.raises(RegistryError, match=r"endpoint /api/2.0/mlflow/registered-models/alias failed with error "
                       r"code 503 != 200. Response body: 'still down'"):  # fmt: skip
        _registry([(503, b"down"), (503, b"still down")], []).champion("m")

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    reader = RestRegistry("http://user:pw@mlflow.test:5000", transport=httpx.MockTransport(unreachable))
    with pytest.raises(RegistryError, match=r"^API request to http://user:pw@mlflow.test:5000/api/2.0/mlflow/"
                       r"model-versions/get failed with exception ConnectError"):  # fmt: skip
        reader.version("m", "1")  # the client's wording, URL included: the app redacts it (test_hardening)


def test_graphs_are_read_through_the_proxy_or_locally_and_other_stores_are_left_to_mlflow(tmp_path):
    seen: list[str] = []
    run = {"run": {"info": {"run_id": "r1", "artifact_uri": "mlflow-artifacts:/1/r1/artifacts"}}}
    reader = _registry([(200, run), (200, b"graph bytes")], seen)
    assert reader.read("runs:/r1/onnx/model.onnx", "r1") == b"graph bytes"
    artifacts = "http://mlflow.test:5000/prefix/api/2.0/mlflow-artifacts/artifacts"
    assert seen == ["http://mlflow.test:5000/prefix/api/2.0/mlflow/runs/get?run_id=r1",
                    f"{artifacts}/1/r1/artifacts/onnx/model.onnx"]  # fmt: skip

    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"local graph")
    local = {"run": {"info": {"run_id": "r1", "artifact_uri": tmp_path.as_uri()}}}
    assert _registry([(200, local)], []).read("runs:/r1/onnx/model.onnx", "r1") == b"local graph"
    assert _registry([], []).read(str(tmp_path / "onnx" / "model.onnx"), "r1") == b"local graph"

    assert _registry([], []).read("s3://bucket/1/r1/artifacts/onnx/model.onnx", "r1") is None
    folder = {"run": {"info": {"run_id": "r1", "artifact_uri": "mlflow-artifacts:/1/r1/artifacts"}}}
    assert _registry([(200, folder)], []).read("runs:/r1/onnx", "r1") is None  # a folder: MLflow's client lists it
    with pytest.raises(RegistryError, match="RESOURCE_DOES_NOT_EXIST"):
        gone = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "File not found"}
        _registry([(404, gone)], []).read("mlflow-artifacts:/1/r1/artifacts/onnx/model.onnx", "r1")


def test_only_plain_http_setups_skip_the_mlflow_client(monkeypatch):
    for var in ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    assert serves_over_rest("http://mlflow:5000") and serves_over_rest("https://mlflow.internal")
    assert not serves_over_rest("sqlite:///x.db") and not serves_over_rest("postgresql://u@db/mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", "/etc/ca.pem")  # TLS settings only the client reads
    assert not serves_over_rest("https://mlflow.internal")
