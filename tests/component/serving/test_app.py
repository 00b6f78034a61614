"""The serving app in process: payload checks, ONNX predictions, auth, health, hot swap, logging."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops import layout
from airflow_mlops.core.io import tables
from airflow_mlops.core.model.packaging import onnx_feeds
from airflow_mlops.core.registry import promotion, tracking
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.serving.app import ServingApp, build_app
from airflow_mlops.serving.config import ServeConfig
from airflow_mlops.serving.inprocess import call
from airflow_mlops.serving.model import ModelLoadError
from airflow_mlops.serving.payload import InputSchema, PayloadError, parse_body
from airflow_mlops.spec import load_spec, parse_spec
from tests.component.core.test_stages import _land_and_claim, _train
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    plans, regions, payments = ["basic", "standard", "premium"], ["north", "south", "east", "west"], ["card", "bank"]
    return [
        {
            "customer_id": f"c{seed}-{i}",
            "tenure_months": int(rng.integers(0, 100)),
            "monthly_charges": float(rng.uniform(10, 200)),
            "support_calls": int(rng.integers(0, 8)),
            "usage_gb": None if i % 7 == 0 else float(rng.uniform(0, 50)),
            "plan": plans[i % 3],
            "region": None if i % 11 == 0 else regions[i % 4],
            "payment_method": payments[i % 2],
        }
        for i in range(n)
    ]


# -- payload: the hot path equals the training-time feature code ------------------------


def _spec_with_derived_and_normalisation():
    text = Path(EXAMPLE_SPEC).read_text()
    text = text.replace(
        "    categorical: [plan, region, payment_method]",
        "    categorical: [plan, region, payment_method]\n"
        "    derived: {charge_per_month: 'monthly_charges / tenure_months', calls_x2: 'support_calls * 2 - 1'}",
    )
    text += "\ncleaning:\n  normalize:\n"
    text += "    - {columns: [plan], strip: true, lowercase: true, mapping: {gold: premium}}\n"
    return parse_spec(text)


def _identity(spec):
    """Feeds keyed by the model input columns themselves (the app keys them so; the model renames)."""
    return {c: c for c in spec.data.features.model_inputs}


def test_request_rows_become_exactly_the_onnx_feeds_training_code_builds():
    spec = _spec_with_derived_and_normalisation()
    rows = _rows(200, seed=3)
    rows[0]["plan"], rows[1]["plan"], rows[2]["tenure_months"] = "  BASIC ", "Gold", 0  # clean-up, x/0
    schema = InputSchema.from_spec(spec)
    inputs = parse_body(json.dumps({"instances": rows}).encode(), schema)
    expected = onnx_feeds(pd.DataFrame.from_records(rows), spec, _identity(spec))
    assert list(inputs.feeds) == list(expected) == list(spec.data.features.model_inputs)
    for column, values in expected.items():
        got = inputs.feeds[column]
        assert got.shape == values.shape == (200, 1) and got.dtype == values.dtype, column
        if values.dtype == np.float32:
            np.testing.assert_array_equal(got, values)  # NaN == NaN here
        else:
            assert got.ravel().tolist() == values.ravel().tolist(), column
    assert inputs.feeds["plan"][0, 0] == "basic" and inputs.feeds["plan"][1, 0] == "premium"
    assert np.isnan(inputs.feeds["charge_per_month"][2, 0])  # divided by zero: missing, like training
    assert inputs.ids == [r["customer_id"] for r in rows]


def test_the_three_body_shapes_give_the_same_inputs(spec):
    schema = InputSchema.from_spec(spec)
    rows = _rows(20)
    columns = list(rows[0])
    shapes = [
        {"instances": rows},
        {"dataframe_records": rows},
        {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}},
        {"inputs": {c: [r[c] for r in rows] for c in columns}},
    ]
    parsed = [parse_body(json.dumps(body).encode(), schema) for body in shapes]
    for other in parsed[1:]:
        for column in schema.model_inputs:
            np.testing.assert_array_equal(other.feeds[column], parsed[0].feeds[column])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"rows": []}', "expected exactly one of"),
        (b'{"instances": [], "inputs": {}}', "expected exactly one of"),
        (b'{"instances": []}', "no rows to predict"),
        (b'{"instances": {"a": 1}}', "expected a list of objects"),
        (b'{"instances": [3]}', "expected an object (one row)"),
        (b'{"dataframe_split": {"columns": ["plan"], "data": [["basic"]]}}', "missing column(s)"),
        (b'{"inputs": {"tenure_months": 3}}', "missing column(s)"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(spec, body, fragment):
    with pytest.raises(PayloadError) as info:
        parse_body(body, InputSchema.from_spec(spec))
    assert fragment in str(info.value)
    assert all(e["loc"][0] == "body" and e["msg"] and e["type"] for e in info.value.errors)


def test_wrong_types_name_the_row_and_column(spec):
    rows = _rows(5)
    rows[1]["tenure_months"] = "12"  # a string where a number belongs: never coerced silently
    rows[3]["plan"] = 7
    rows[4]["support_calls"] = True
    del rows[2]["region"]
    schema = InputSchema.from_spec(spec)
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps({"instances": rows}).encode(), schema)
    assert [e["loc"] for e in info.value.errors] == [["body", "instances", 2]]
    assert "missing field(s) ['region']" in info.value.errors[0]["msg"]
    rows[2]["region"] = "north"
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps({"instances": rows}).encode(), schema)
    where = {tuple(e["loc"][2:]): e["msg"] for e in info.value.errors}
    assert where == {
        (1, "tenure_months"): 'expected a number or null, got "12"',
        (4, "support_calls"): "expected a number or null, got true",
        (3, "plan"): "expected a string or null, got 7",
    }


def test_too_many_rows_are_refused(spec):
    schema = InputSchema.from_spec(spec, max_rows=10)
    with pytest.raises(PayloadError, match="more than 10 rows; at most 10 per request"):
        parse_body(json.dumps({"instances": _rows(11)}).encode(), schema)


# -- the app around a real champion -------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A champion (v1) and a second version (v2) in a SQLite registry; v1 holds the alias."""
    home = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as patch:
        for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
            patch.delenv(var, raising=False)
        patch.setenv("AIRFLOW_MLOPS_HOME", str(home / "home"))
        spec = load_spec(EXAMPLE_SPEC)
        registry = Registry(f"sqlite:///{home}/mlflow.db")
        _land_and_claim(spec, "training", seed=1)
        gate = _train(spec, registry, "run-1")
        promotion.promote(registry, spec.registered_model_name, gate["version"], "first", "test")
        _land_and_claim(spec, "training", seed=2, day=2)
        second = _train(spec, registry, "run-2", force=True)
        assert (gate["version"], second["version"]) == ("1", "2")
        yield spec, registry
        promotion.promote(registry, spec.registered_model_name, "1", "reset", "test")


def _app(served, **overrides) -> ServingApp:
    _, registry = served
    config = ServeConfig(spec_path=str(EXAMPLE_SPEC), tracking_uri=registry.tracking_uri, tokens=(TOKEN,), **overrides)
    return build_app(config)


def _run(coroutine):
    return asyncio.run(coroutine)


def test_predictions_match_the_registered_scikit_learn_model(served):
    spec, registry = served
    app = _app(served, log_predictions=False)
    rows = _rows(100, seed=9)

    async def scenario():
        await app.startup()
        try:
            return await call(app, "POST", "/v1/predict", json.dumps({"instances": rows}).encode(),
                              {**AUTH, "X-Request-ID": "req-42"})  # fmt: skip
        finally:
            await app.shutdown()

    status, headers, body = _run(scenario())
    assert status == 200, body
    answer = json.loads(body)
    # The log's key is the server's id; the client's stays beside it (see test_serving_hardening).
    assert answer["request_id"] == headers["x-request-id"] != "req-42" and answer["client_request_id"] == "req-42"
    assert (answer["model_name"], answer["model_version"]) == (spec.registered_model_name, "1")
    sklearn_model = tracking.load_model(registry, f"models:/{spec.registered_model_name}/1")
    from airflow_mlops.core.model.training import feature_frame

    features = feature_frame(pd.DataFrame.from_records(rows), spec)
    np.testing.assert_allclose(answer["scores"], sklearn_model.predict_proba(features)[:, -1], atol=1e-5)
    assert answer["predictions"] == sklearn_model.predict(features).tolist()


def test_auth_health_openapi_and_errors(served):
    app = _app(served, log_predictions=False, max_body_bytes=50_000)
    good = json.dumps({"instances": _rows(3)}).encode()

    async def scenario():
        results = {"before": await call(app, "GET", "/health/ready")}
        await app.startup()
        try:
            results["no_token"] = await call(app, "POST", "/v1/predict", good)
            results["wrong_token"] = await call(app, "POST", "/v1/predict", good, {"Authorization": "Bearer nope"})
            results["basic"] = await call(app, "POST", "/v1/predict", good, {"Authorization": f"Basic {TOKEN}"})
            results["ok"] = await call(app, "POST", "/invocations", good, AUTH)
            results["bad"] = await call(app, "POST", "/v1/predict", b'{"instances": [{"plan": 1}]}', AUTH)
            results["big"] = await call(app, "POST", "/v1/predict", b"x" * 60_000, AUTH)
            results["live"] = await call(app, "GET", "/health/live")
            results["ready"] = await call(app, "GET", "/health/ready")
            results["model"] = await call(app, "GET", "/v1/model", headers=AUTH)
            results["openapi"] = await call(app, "GET", "/openapi.json")
            results["metrics"] = await call(app, "GET", "/metrics", headers=AUTH)
            results["missing"] = await call(app, "GET", "/nope")
            results["method"] = await call(app, "GET", "/v1/predict", headers=AUTH)
        finally:
            await app.shutdown()
        return results

    r = _run(scenario())
    assert r["before"][0] == 503  # not ready before a model is loaded
    for key in ("no_token", "wrong_token", "basic"):
        assert r[key][0] == 401 and r[key][1]["www-authenticate"] == "Bearer", key
    assert r["ok"][0] == 200 and len(json.loads(r["ok"][2])["predictions"]) == 3
    assert r["bad"][0] == 422
    detail = json.loads(r["bad"][2])["detail"]
    assert detail[0]["type"] == "missing" and "tenure_months" in detail[0]["msg"]
    assert r["big"][0] == 413
    assert r["live"][0] == 200
    assert r["ready"][0] == 200 and json.loads(r["ready"][2])["model_version"] == "1"
    model = json.loads(r["model"][2])
    assert model["inputs"]["plan"] == "tensor(string)" and model["inputs"]["tenure_months"] == "tensor(float)"
    document = json.loads(r["openapi"][2])
    assert document["openapi"].startswith("3.1") and "/v1/predict" in document["paths"]
    row = document["components"]["schemas"]["Row"]
    assert set(row["required"]) == set(["tenure_months", "monthly_charges", "support_calls", "usage_gb",
                                        "plan", "region", "payment_method"])  # fmt: skip
    assert 'airflow_mlops_serving_responses_total{status="401"} 3' in r["metrics"][2].decode()
    assert (r["missing"][0], r["method"][0]) == (404, 405)


def test_the_app_refuses_to_start_without_a_token_unless_told(served):
    _, registry = served
    with pytest.raises(RuntimeError, match="AIRFLOW_MLOPS_SERVE_TOKEN"):
        build_app(ServeConfig(spec_path=str(EXAMPLE_SPEC), tracking_uri=registry.tracking_uri))
    app = build_app(ServeConfig(spec_path=str(EXAMPLE_SPEC), tracking_uri=registry.tracking_uri, require_token=False))
    assert app._authorized({"headers": []})


def test_hot_swap_under_concurrent_requests_fails_nothing(served):
    spec, registry = served
    name = spec.registered_model_name
    app = _app(served, log_predictions=False)
    body = json.dumps({"instances": _rows(10)}).encode()

    async def client(stop: asyncio.Event, answers: list):
        while not stop.is_set():
            answers.append(await call(app, "POST", "/v1/predict", body, AUTH))
            await asyncio.sleep(0)

    async def scenario():
        await app.startup()
        answers: list = []
        stop = asyncio.Event()
        clients = [asyncio.create_task(client(stop, answers)) for _ in range(8)]
        try:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(promotion.promote, registry, name, "2", "swap test", "test")
            swapped = await app.refresh()  # what the watcher does every poll_seconds
            await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.gather(*clients)
            await asyncio.to_thread(promotion.promote, registry, name, "1", "swap test back", "test")
            await app.shutdown()
        return swapped, answers

    swapped, answers = _run(scenario())
    assert swapped and app.swaps == 2  # the first load, then the swap
    assert [a[0] for a in answers if a[0] != 200] == []
    versions = [json.loads(a[2])["model_version"] for a in answers]
    assert set(versions) == {"1", "2"} and versions.index("2") > 0
    assert versions == sorted(versions)  # once v2 answers, v1 never does again


def test_a_version_that_cannot_load_is_not_swapped_in(served, monkeypatch):
    spec, registry = served
    app = _app(served, log_predictions=False)
    _run(app.refresh())
    assert app.model.version == "1"
    client = registry.client
    name = spec.registered_model_name
    original = client.get_model_version(name, "2").tags["onnx_uri"]
    client.delete_model_version_tag(name, "2", "onnx_uri")
    try:
        promotion.promote(registry, name, "2", "no onnx", "test")
        assert not _run(app.refresh())
        assert app.model.version == "1" and "has no ONNX graph" in app.load_error
        with pytest.raises(ModelLoadError, match="has no ONNX graph"):
            app._load("2")
    finally:
        client.set_model_version_tag(name, "2", "onnx_uri", original)
        promotion.promote(registry, name, "1", "back", "test")


def test_every_prediction_is_logged_and_shutdown_flushes(served):
    spec, _ = served
    app = _app(served, log_flush_rows=1_000_000, log_flush_seconds=3600)
    bodies = [json.dumps({"instances": _rows(n, seed=n)}).encode() for n in (1, 7, 100)]

    async def scenario():
        await app.startup()
        try:
            return [await call(app, "POST", "/v1/predict", b, AUTH) for b in bodies]
        finally:
            await app.shutdown()  # nothing was flushed yet: shutdown must write all 108 rows

    before = set(_log_files(spec))
    answers = _run(scenario())
    new = sorted(set(_log_files(spec)) - before)
    assert len(new) == 1 and "/date=" in new[0]
    log = tables.read_table(new[0])
    assert len(log) == 108
    ids = [json.loads(a[2])["request_id"] for a in answers]
    assert log.groupby("request_id", sort=False)["row"].max().to_dict() == {ids[0]: 0, ids[1]: 6, ids[2]: 99}
    last = log[log["request_id"] == ids[2]].sort_values("row")
    np.testing.assert_allclose(last["score"], json.loads(answers[2][2])["scores"])
    assert last["customer_id"].tolist() == [r["customer_id"] for r in _rows(100, seed=100)]
    assert set(log["model_version"]) == {"1"} and set(log["source_uri"]) == {"serving"}
    assert {*spec.data.features.model_inputs, "prediction", "score", "logged_at"} <= set(log.columns)
    assert log.loc[log["region"].isna() | (log["region"] == ""), "region"].eq("").all()


def _log_files(spec) -> list[str]:
    from airflow_mlops.core.io import storage

    return storage.list_files_recursive(layout.prediction_log_dir(spec.name), (".parquet",))


def test_the_typed_fast_path_and_the_general_path_agree(spec):
    schema = InputSchema.from_spec(spec)
    rows = _rows(50, seed=4)
    fast = parse_body(json.dumps({"instances": rows}).encode(), schema)
    general = parse_body(json.dumps({"inputs": {c: [r[c] for r in rows] for c in rows[0]}}).encode(), schema)
    for column in schema.model_inputs:
        np.testing.assert_array_equal(fast.feeds[column], general.feeds[column])
        assert fast.features[column].dtype == general.features[column].dtype
    assert fast.ids == general.ids
    rows[0]["customer_id"] = [1, 2]  # an id the typed decoder refuses: the reason is kept
    with pytest.raises(PayloadError, match="customer_id"):
        parse_body(json.dumps({"instances": rows}).encode(), schema)


def test_concurrent_requests_share_one_model_run_and_get_their_own_rows_back(served):
    spec, registry = served
    app = _app(served, log_predictions=False)
    bodies = [_rows(n, seed=n) for n in (1, 5, 40, 2)]

    async def scenario():
        await app.startup()
        try:
            runs_before = app.batches
            answers = await asyncio.gather(
                *(call(app, "POST", "/v1/predict", json.dumps({"instances": b}).encode(), AUTH) for b in bodies)
            )
            return answers, app.batches - runs_before
        finally:
            await app.shutdown()

    answers, runs = _run(scenario())
    assert runs == 1  # four requests ready together: one ONNX Runtime call
    sklearn_model = tracking.load_model(registry, f"models:/{spec.registered_model_name}/1")
    from airflow_mlops.core.model.training import feature_frame

    for rows, (status, _, body) in zip(bodies, answers, strict=True):
        assert status == 200
        expected = sklearn_model.predict_proba(feature_frame(pd.DataFrame.from_records(rows), spec))[:, -1]
        np.testing.assert_allclose(json.loads(body)["scores"], expected, atol=1e-5)


# -- the deploy step ----------------------------------------------------------------------


def _test_rows_uri(served) -> str:
    """The test split the fixture's last training run wrote (real, labeled rows)."""
    from airflow_mlops.core.io import storage

    splits = storage.list_files_recursive(layout.artifact_root(), (".parquet",))
    return next(u for u in splits if u.endswith("test.parquet"))


@pytest.fixture
def live_server(served):
    """The real app on uvicorn in a thread, on a free port, polling the alias every 0.2 s."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = _app(served, log_predictions=False, poll_seconds=0.2)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=30)


def test_deploy_queries_the_new_champion_in_process_and_in_the_running_app(served, live_server):
    from airflow_mlops.serving.deploy import deploy_or_rollback

    spec, registry = served
    url, app = live_server
    name = spec.registered_model_name
    record = promotion.promote(registry, name, "2", "deploy test", "test")
    try:
        report = deploy_or_rollback(spec, registry, record, _test_rows_uri(served), "test", url, TOKEN)
        assert report["version"] == "2" and report["in_process"]["rows"] == spec.deployment.smoke_rows
        assert report["in_process"]["max_abs_diff"] <= 1e-4 and report["live"]["max_abs_diff"] <= 1e-4
        assert app.model.version == "2"  # the running app swapped by itself before it was queried
        assert registry.client.get_model_version(name, "2").tags["deploy"] == "passed"
        assert app.prediction_logger is None
    finally:
        promotion.promote(registry, name, "1", "back", "test")


def test_a_champion_that_fails_its_smoke_test_is_rolled_back(served):
    from airflow_mlops.serving.deploy import DeployError, deploy_or_rollback

    spec, registry = served
    name = spec.registered_model_name
    client = registry.client
    original = client.get_model_version(name, "2").tags["onnx_uri"]
    client.set_model_version_tag(name, "2", "onnx_uri", original.replace("/onnx/model.onnx", "/onnx/missing.onnx"))
    try:
        record = promotion.promote(registry, name, "2", "a broken package", "test")
        with pytest.raises(DeployError, match=r"smoke test of v2 failed: .*champion rolled back to v1"):
            deploy_or_rollback(spec, registry, record, _test_rows_uri(served), "test")
        assert str(registry.champion(name).version) == "1"
        last = registry.promotion_history(name)[-1]
        assert last["reason"].startswith("rollback: deploy smoke test of v2 failed")
    finally:
        client.set_model_version_tag(name, "2", "onnx_uri", original)
        promotion.promote(registry, name, "1", "back", "test")


def test_a_failed_deploy_restores_the_previous_champion_even_if_it_was_forced_back_earlier(served):
    from airflow_mlops.serving.deploy import DeployError, deploy_or_rollback

    spec, registry = served
    name = spec.registered_model_name
    client = registry.client
    original = client.get_model_version(name, "2").tags["onnx_uri"]
    client.set_model_version_tag(name, "1", "gate", "failed")  # v1 serves, yet a plain rollback would refuse it
    client.set_model_version_tag(name, "2", "onnx_uri", original.replace("/onnx/model.onnx", "/onnx/missing.onnx"))
    try:
        with pytest.raises(promotion.RollbackError, match="v1"):
            promotion.rollback(registry, name, by="test", reason="check", to_version="1")
        record = promotion.promote(registry, name, "2", "a broken package", "test")
        with pytest.raises(DeployError, match="champion rolled back to v1"):
            deploy_or_rollback(spec, registry, record, _test_rows_uri(served), "test")
        assert str(registry.champion(name).version) == "1"
        assert registry.promotion_history(name)[-1].get("forced") is True
    finally:
        client.set_model_version_tag(name, "1", "gate", "passed")
        client.set_model_version_tag(name, "2", "onnx_uri", original)
        promotion.promote(registry, name, "1", "back", "test")


def test_a_running_app_that_never_swaps_fails_the_deploy_and_rolls_back(served):
    from airflow_mlops.serving.deploy import DeployError, deploy_or_rollback

    spec, registry = served
    name = spec.registered_model_name
    quick = spec.model_copy(update={"deployment": spec.deployment.model_copy(update={"ready_timeout_seconds": 1})})
    record = promotion.promote(registry, name, "2", "nobody listens", "test")
    with pytest.raises(DeployError, match=r"did not load v2 within 1 s .*unreachable.*rolled back to v1"):
        deploy_or_rollback(quick, registry, record, _test_rows_uri(served), "test", "http://127.0.0.1:9", None)
    assert str(registry.champion(name).version) == "1"


def test_the_http_probe_reads_the_alias_from_a_tracking_server(monkeypatch):
    """The REST answers of MLflow 3.17's server (recorded from one): version, no alias, no model."""
    import httpx

    from airflow_mlops.serving.registry_rest import HttpAliasProbe

    answers = {
        "churn_classifier": (200, {"model_version": {"name": "churn_classifier", "version": "3"}}),
        "other_alias_error": (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid alias name 'x'"}),
        "no_alias": (
            400,
            {"error_code": "INVALID_PARAMETER_VALUE", "message": "Registered model alias champion not found."},
        ),
        "no_model": (
            404,
            {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model with name=x not found"},
        ),
        "broken": (500, {"error_code": "INTERNAL_ERROR", "message": "database is down"}),
    }
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, dict(request.url.params), request.headers.get("authorization")))
        status, body = answers[request.url.params["name"]]
        return httpx.Response(status, json=body)

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")

    async def probe(name):
        p = HttpAliasProbe("http://mlflow.test", name)
        p._client._transport = httpx.MockTransport(handler)
        try:
            return await p()
        finally:
            await p.close()

    assert _run(probe("churn_classifier")) == "3"
    assert _run(probe("no_alias")) is None and _run(probe("no_model")) is None
    with pytest.raises(httpx.HTTPStatusError):
        _run(probe("other_alias_error"))  # not "no champion": the app keeps serving
    with pytest.raises(httpx.HTTPStatusError):
        _run(probe("broken"))  # an outage is not "no champion": refresh keeps serving the current model
    assert seen[0] == ("/api/2.0/mlflow/registered-models/alias", {"name": "churn_classifier", "alias": "champion"},
                       "Bearer tok")  # fmt: skip


@pytest.mark.parametrize(
    ("conn", "url"),
    [
        ({"conn_type": "http", "host": "serving.internal", "port": 8000}, "http://serving.internal:8000"),
        ({"conn_type": "http", "host": "https://serving.internal", "port": 8443}, "https://serving.internal:8443"),
        ({"conn_type": "http", "host": "https://serving.internal:9000/api/"}, "https://serving.internal:9000/api"),
        ({"conn_type": "http", "host": "10.0.0.5", "schema": "https", "port": 443}, "https://10.0.0.5:443"),
        ({"conn_type": "http", "host": "[::1]", "port": 8000}, "http://[::1]:8000"),
    ],
)
def test_the_deploy_step_reads_the_serving_apps_url_and_token_from_a_connection(monkeypatch, conn, url):
    from airflow_mlops.operators.release import DeployChampionOperator

    monkeypatch.setenv("AIRFLOW_CONN_CHURN_SERVING", json.dumps({**conn, "password": "tok"}))
    operator = DeployChampionOperator(task_id="deploy", spec_path=str(EXAMPLE_SPEC), promotion={}, split={})
    assert operator._live_target("churn_serving") == (url, "tok")


def test_metrics_have_one_content_type_and_every_answered_row_is_logged(served):
    app = _app(served, log_flush_rows=1_000_000, log_flush_seconds=3600)
    body = json.dumps({"instances": _rows(3)}).encode()

    async def scenario():
        await app.startup()
        try:
            metrics = await call(app, "GET", "/metrics", headers=AUTH)
            await call(app, "POST", "/v1/predict", body, {**AUTH, "X-Smoke-Test": "1"})  # no way to skip the log
            await call(app, "POST", "/v1/predict", body, AUTH)
            return metrics, app.prediction_logger.pending_rows
        finally:
            await app.shutdown()

    (status, headers, _), pending = _run(scenario())
    assert status == 200 and headers["content-type"] == "text/plain; version=0.0.4"
    assert pending == 6


def test_a_removed_alias_unloads_the_model(served):
    app = _app(served, log_predictions=False)
    versions = iter(["1", None])
    app._probe = lambda: next(versions)
    _run(app.refresh())
    assert app.model.version == "1"
    assert _run(app.refresh()) and app.model is None
    status, _, body = _run(call(app, "POST", "/v1/predict", json.dumps({"instances": _rows(1)}).encode(), AUTH))
    assert status == 503 and "alias was removed" in json.loads(body)["detail"]


def test_a_client_that_disconnects_mid_body_gets_no_answer_and_counts_nothing(served):
    app = _app(served, log_predictions=False)
    _run(app.refresh())
    messages = iter([{"type": "http.request", "body": b'{"instances": [', "more_body": True},
                     {"type": "http.disconnect"}])  # fmt: skip
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/predict",
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
    }
    _run(app(scope, receive, send))
    assert sent == [] and sum(app.responses.values()) == 0


def test_categories_declared_as_integers_or_booleans_are_served_as_training_saw_them():
    text = (
        Path(EXAMPLE_SPEC)
        .read_text()
        .replace(
            "    categorical: [plan, region, payment_method]",
            "    categorical: [plan, region, payment_method, tier, vip]",
        )
        .replace("  dtypes: {churned: int}", "  dtypes: {churned: int, tier: int, vip: bool, support_calls: bool}")
    )
    spec = parse_spec(text)
    rows = _rows(4)
    for i, row in enumerate(rows):
        row.update(tier=[1, 2, None, 3][i], vip=[True, False, None, True][i], support_calls=[True, False, None, 1][i])
    schema = InputSchema.from_spec(spec)
    inputs = parse_body(json.dumps({"instances": rows}).encode(), schema)
    frame = pd.DataFrame.from_records(rows).astype({"tier": "Int64", "vip": "boolean"})
    expected = onnx_feeds(frame, spec, _identity(spec))
    for column in ("tier", "vip", "support_calls"):
        np.testing.assert_array_equal(inputs.feeds[column], expected[column])
    assert inputs.feeds["vip"].ravel().tolist() == ["True", "False", "", "True"]
    rows[0]["tier"] = "gold"  # still text: a string is a fine category
    rows[1]["plan"] = 3  # a category not declared int: refused, located in the body
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps({"instances": rows}).encode(), schema)
    assert [e["loc"] for e in info.value.errors] == [["body", "instances", 1, "plan"]]


def test_a_typed_decoder_refusal_names_its_place_in_the_body(spec):
    rows = _rows(5)
    rows[3]["customer_id"] = {"nested": 1}
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps({"instances": rows}).encode(), InputSchema.from_spec(spec))
    assert info.value.errors[0]["loc"] == ["body", "instances", 3, "customer_id"]


def test_inputs_and_split_bodies_locate_errors_by_their_own_shape(spec):
    schema = InputSchema.from_spec(spec)
    rows = _rows(3)
    rows[2]["usage_gb"] = "lots"
    columns = list(rows[0])
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps({"inputs": {c: [r[c] for r in rows] for c in columns}}).encode(), schema)
    assert info.value.errors[0]["loc"] == ["body", "inputs", "usage_gb", 2]
    split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps(split).encode(), schema)
    assert info.value.errors[0]["loc"] == ["body", "dataframe_split", "data", 2, columns.index("usage_gb")]


def test_preflight_refuses_a_candidate_the_app_cannot_serve(served):
    from airflow_mlops.serving.deploy import DeployError, preflight

    spec, registry = served
    client = registry.client
    name = spec.registered_model_name
    assert preflight(spec, registry, "2", _test_rows_uri(served))["max_abs_diff"] <= 1e-4
    original = client.get_model_version(name, "2").tags["onnx_uri"]
    client.delete_model_version_tag(name, "2", "onnx_uri")
    try:
        with pytest.raises(DeployError, match="cannot load v2"):
            preflight(spec, registry, "2", _test_rows_uri(served))
        assert str(registry.champion(name).version) == "1"  # nothing moved
    finally:
        client.set_model_version_tag(name, "2", "onnx_uri", original)


def test_deploy_refuses_to_test_a_version_that_is_no_longer_champion(served):
    from airflow_mlops.serving.deploy import DeployError, deploy_or_rollback

    spec, registry = served
    record = {"from_version": "1", "to_version": "2"}  # e.g. the task cleared after its rollback
    tags = registry.client.get_model_version(spec.registered_model_name, "2").tags
    with pytest.raises(DeployError, match="v2 is no longer the champion"):
        deploy_or_rollback(spec, registry, record, _test_rows_uri(served), "test")
    assert registry.client.get_model_version(spec.registered_model_name, "2").tags == tags
    assert str(registry.champion(spec.registered_model_name).version) == "1"
