"""Shadow and canary in the serving app, against a real ``mlflow server`` (REST) with real model versions.

Shadow: the challenger's rows are logged apart (source 'shadow', its version) and never read as a
champion's; callers get the same answers with shadow on and off; a full queue drops and counts.
Canary: a deliberately bad new champion (its model runs raise, or its scores are constant) under
a load of client threads is rolled back on its own, no client request fails, and the promotion
history holds the automatic rollback with its figures; a good one bakes and stays.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from airflow_mlops.core.operations.prediction_log.readers import champion_predictions, read_log_file
from airflow_mlops.core.registry import promotion
from airflow_mlops.core.registry.client import CHALLENGER_ALIAS
from airflow_mlops.devstack.processes import free_port
from airflow_mlops.serving.app import ServingApp, build_app
from airflow_mlops.serving.config import ServeConfig
from airflow_mlops.serving.inprocess import call
from airflow_mlops.spec import load_spec
from tests.component.serving.test_app import _rows
from tests.conftest import EXAMPLE_SPEC
from tests.support.mlflow_server import mlflow_server
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component

MODEL = "churn_classifier"
TOKEN = "s3cret-token-for-rollout-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``mlflow server`` on SQLite and a local artifact folder, on a free port."""
    root = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(root) as uri:
        yield uri


@pytest.fixture(scope="module")
def versions(server: str, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """Two servable versions (v1 champion, v2 the challenger), each promoted by a run of its own."""
    made = Versions(server, MODEL, tmp_path_factory.mktemp("versions"))
    for run in ("churn_training/run-1", "churn_training/run-2"):
        made.add(SERVABLE, run=run)
    promotion.promote(made.registry, MODEL, "1", "first champion", "churn_training/run-1")
    made.registry.client.set_registered_model_alias(MODEL, CHALLENGER_ALIAS, "2")
    return made


@pytest.fixture
def champion_v1(versions: Versions) -> Versions:
    """v1 is champion when the test starts (a test that moved it is undone by the next)."""
    current = versions.registry.champion(MODEL)
    if current is None or str(current.version) != "1":
        promotion.promote(versions.registry, MODEL, "1", "reset for the next test", "test")
    return versions


def _spec_file(tmp_path: Path, rollout: dict[str, Any]) -> str:
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["rollout"] = rollout
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _app(spec_path: str, tracking_uri: str, **overrides: Any) -> ServingApp:
    config = ServeConfig(spec_path=spec_path, tracking_uri=tracking_uri, tokens=(TOKEN,), **overrides)
    return build_app(config)


# -- shadow ---------------------------------------------------------------------------------


def test_the_challengers_rows_are_logged_apart_and_callers_get_the_same_answers(champion_v1, mlops_home, tmp_path):
    tracking_uri = champion_v1.tracking_uri
    shadowed = _app(_spec_file(tmp_path, {"shadow": {"enabled": True, "share": 1.0}}), tracking_uri)
    plain = _app(str(EXAMPLE_SPEC), tracking_uri, log_predictions=False)
    bodies = [json.dumps({"instances": _rows(n, seed=n)}).encode() for n in (1, 10, 100)]

    async def answers(app: ServingApp) -> list[Any]:
        await app.startup()
        try:
            got = [await call(app, "POST", "/v1/predict", body, AUTH) for body in bodies * 3]
            metrics = (await call(app, "GET", "/metrics", headers=AUTH))[2].decode()
        finally:
            await app.shutdown()
        return [*got, metrics]

    *with_shadow, metrics = asyncio.run(answers(shadowed))
    *without, _ = asyncio.run(answers(plain))
    assert shadowed.rollout is not None and shadowed.rollout.shadow is not None
    assert [a[0] for a in with_shadow] == [200] * 9 == [a[0] for a in without]
    for on, off in zip(with_shadow, without, strict=True):
        on_answer, off_answer = json.loads(on[2]), json.loads(off[2])
        on_answer.pop("request_id"), off_answer.pop("request_id")
        assert on_answer == off_answer and on_answer["model_version"] == "1"  # the caller gets the champion's
    assert 'airflow_mlops_shadow_requests_total{outcome="dropped"} 0' in metrics
    assert shadowed.rollout.shadow.scored_requests == 9  # off the request path: all scored by the shutdown
    assert 'airflow_mlops_shadow_model_info{model_version="2"} 1' in metrics

    files = sorted(str(p) for p in Path(shadowed.prediction_logger.folder).rglob("*.parquet"))
    shadow_files = [f for f in files if "-shadow-" in Path(f).name]
    assert shadow_files and len(shadow_files) < len(files)
    import pyarrow.parquet as pq

    shadow_rows = pq.read_table(shadow_files).to_pydict()
    assert set(shadow_rows["source_uri"]) == {"shadow"} and set(shadow_rows["model_version"]) == {"2"}
    champion_ids = {r for f in files if f not in shadow_files for r in pq.read_table(f)["request_id"].to_pylist()}
    assert set(shadow_rows["request_id"]) == champion_ids  # the same requests: delayed labels join both
    assert len(shadow_rows["request_id"]) == 3 * 111
    # Monitoring, decay and the replay read a version's own answers only: v2 answered nobody.
    assert all(read_log_file(f, ["prediction"], "2").num_rows == 0 for f in files)
    assert sum(read_log_file(f, ["prediction"], "2", shadow=True).num_rows for f in shadow_files) == 333
    assert len(champion_predictions(load_spec(EXAMPLE_SPEC), "2")) == 0
    assert len(champion_predictions(load_spec(EXAMPLE_SPEC), "1")) == 333


class _Blocking:
    """An ONNX session stand-in that waits until released (a challenger too slow to keep up)."""

    def __init__(self, session: Any) -> None:
        self.session, self.release = session, threading.Event()

    def run(self, *args: Any) -> Any:
        self.release.wait(30)
        return self.session.run(*args)


def test_a_full_shadow_queue_drops_requests_and_counts_them(champion_v1, mlops_home, tmp_path):
    spec_path = _spec_file(tmp_path, {"shadow": {"enabled": True, "share": 1.0, "queue_requests": 2}})
    app = _app(spec_path, champion_v1.tracking_uri, log_predictions=False)
    body = json.dumps({"instances": _rows(100)}).encode()

    async def scenario() -> tuple[list[Any], str]:
        await app.startup()
        shadow = app.rollout.shadow
        blocking = _Blocking(shadow.model.session)
        shadow.model = dataclasses.replace(shadow.model, session=blocking)
        try:
            got = [await call(app, "POST", "/v1/predict", body, AUTH) for _ in range(20)]
            metrics = (await call(app, "GET", "/metrics", headers=AUTH))[2].decode()
        finally:
            blocking.release.set()
            await app.shutdown()
        return got, metrics

    got, metrics = asyncio.run(scenario())
    assert [a[0] for a in got] == [200] * 20  # a stuck challenger holds no caller
    shadow = app.rollout.shadow
    # One request in the thread, two waiting: the other 17 dropped.
    assert shadow.dropped_requests == 17 and shadow.scored_requests == 3
    assert 'airflow_mlops_shadow_requests_total{outcome="dropped"} 17' in metrics


# -- canary ---------------------------------------------------------------------------------


class _Raising:
    def run(self, *args: Any) -> Any:
        raise RuntimeError("a deliberately broken model")


class _Constant:
    """Answers every row with the same score (a model that learned nothing)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def run(self, names: Any, feeds: dict[str, Any]) -> Any:
        labels, _ = self.session.run(names, feeds)
        constant = np.tile(np.array([[0.5, 0.5]], dtype=np.float32), (len(labels), 1))
        return [np.zeros_like(labels), constant]


def _live(app: ServingApp) -> Any:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def _load(url: str, stop: threading.Event, statuses: list[int], versions: list[str]) -> None:
    body = json.dumps({"instances": _rows(100, seed=5)}).encode()
    with httpx.Client(base_url=url, headers={**AUTH, "content-type": "application/json"}, timeout=30) as client:
        while not stop.is_set():
            try:
                answer = client.post("/v1/predict", content=body)
            except httpx.HTTPError:
                statuses.append(-1)
                continue
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                versions.append(answer.json()["model_version"])


CANARY = {"enabled": True, "share": 0.5, "poll_seconds": 0.5, "min_requests": 20, "baking_minutes": 10,
          "max_error_rate": 0.05, "max_p99_latency_ratio": 20, "max_score_psi": 0.25}  # fmt: skip


@pytest.mark.parametrize("bad", ["raises", "constant scores"])
def test_a_bad_new_champion_is_rolled_back_under_load_and_no_request_fails(champion_v1, mlops_home, tmp_path, bad):
    versions = champion_v1
    app = _app(_spec_file(tmp_path, {"canary": CANARY}), versions.tracking_uri, log_predictions=False,
               poll_seconds=0.2)  # fmt: skip
    real_load = app._load

    def load(version: str | None) -> Any:  # v2 is the deliberately bad one
        model = real_load(version)
        if model.version != "2":
            return model
        return dataclasses.replace(model, session=_Raising() if bad == "raises" else _Constant(model.session))

    app._load = load
    url, server, thread = _live(app)
    stop, statuses, answered = threading.Event(), [], []
    clients = [threading.Thread(target=_load, args=(url, stop, statuses, answered)) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.0)  # the baseline's figures before the swap
        promotion.promote(versions.registry, MODEL, "2", "gate passed", "churn_training/run-2")
        promoted = time.monotonic()
        deadline = promoted + 60
        while time.monotonic() < deadline and str(versions.registry.champion(MODEL).version) != "1":
            time.sleep(0.2)
        rolled_back = time.monotonic() - promoted
        time.sleep(0.5)
    finally:
        stop.set()
        for client in clients:
            client.join(30)
        server.should_exit = True
        thread.join(30)
    assert str(versions.registry.champion(MODEL).version) == "1", "the bad champion was not rolled back"
    assert statuses and set(statuses) == {200}, f"failed client requests: {[s for s in statuses if s != 200][:5]}"
    record = versions.registry.promotion_history(MODEL)[-1]
    assert (record["from_version"], record["to_version"], record["by"]) == ("2", "1", "canary")
    assert record["rollback"] and record["automatic"]
    figures = record["figures"]
    assert figures["candidate"]["version"] == "2" and figures["baseline"]["version"] == "1"
    if bad == "raises":
        assert "error rate" in record["reason"] and figures["candidate"]["error_rate"] > 0.05
        assert "2" not in answered  # every answer came from v1: the broken runs were answered by the baseline
    else:
        assert "score PSI" in record["reason"] and figures["score_psi"] > 0.25
    assert app.rollout.canary.rollbacks == 1 and app.model.version == "1"
    # Judged every 0.5 s from 20 requests on: the child process's MLflow client is most of it.
    print(f"{bad}: alias back on v1 {rolled_back:.1f} s after the promotion; {len(statuses)} requests, "
          f"{json.dumps(record)}")  # fmt: skip
    assert rolled_back < 45, rolled_back


def test_a_good_new_champion_bakes_and_stays(champion_v1, mlops_home, tmp_path):
    versions = champion_v1
    rule = {**CANARY, "baking_minutes": 0.05, "min_requests": 5}
    app = _app(_spec_file(tmp_path, {"canary": rule}), versions.tracking_uri, log_predictions=False)
    body = json.dumps({"instances": _rows(100, seed=5)}).encode()

    async def scenario() -> list[str]:
        await app.startup()
        answered = []
        try:
            for _ in range(30):
                answered.append(json.loads((await call(app, "POST", "/v1/predict", body, AUTH))[2])["model_version"])
            await asyncio.to_thread(promotion.promote, versions.registry, MODEL, "2", "gate passed", "test")
            assert await app.refresh()
            assert app.rollout.canary.baking
            for _ in range(60):
                status, _, raw = await call(app, "POST", "/v1/predict", body, AUTH)
                assert status == 200
                answered.append(json.loads(raw)["model_version"])
            assert await app.rollout.judge(app) is None  # within every threshold, the window not over
            await asyncio.sleep(3.1)
            assert await app.rollout.judge(app) == "baked"
        finally:
            await app.shutdown()
        return answered

    answered = asyncio.run(scenario())
    assert set(answered[30:]) == {"1", "2"}  # half the traffic to each while it baked
    canary = app.rollout.canary
    assert (canary.bakes, canary.rollbacks, canary.baking, app.model.version) == (1, 0, False, "2")
    assert str(versions.registry.champion(MODEL).version) == "2"
