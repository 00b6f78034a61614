"""The code-change watcher: its kwargs follow the training fingerprint only; run() fires once per change,
remembered in the asset state store across trigger restarts; MLflow answers come from a mock transport."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml
from airflow.triggers.base import BaseEventTrigger

from airflow_mlops.spec import parse_spec
from airflow_mlops.triggers.code_change import CodeChangeTrigger

pytestmark = pytest.mark.unit

CHURN = Path(__file__).resolve().parents[3] / "include" / "pipelines" / "churn.yaml"


class Store:
    """Airflow's asset state store as the triggerer hands it to a watcher (aget/aset), in memory."""

    def __init__(self) -> None:
        self.values: dict = {}

    async def aget(self, key, default=None):
        return self.values.get(key, default)

    async def aset(self, key, value):
        self.values[key] = value


def _registry(champion: dict | None, trained: bool = False) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/registered-models/alias"):
            if champion is None:
                return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"})
            tags = [{"key": k, "value": v} for k, v in champion["tags"].items()]
            return httpx.Response(200, json={"model_version": {"version": champion["version"], "tags": tags}})
        if request.url.path.endswith("/model-versions/search"):
            assert "tags.training_fingerprint='new'" in request.url.params["filter"]
            return httpx.Response(200, json={"model_versions": [{"version": "9"}]} if trained else {})
        return httpx.Response(500)

    return httpx.MockTransport(answer)


def _trigger(monkeypatch, transport: httpx.MockTransport, store: Store | None) -> CodeChangeTrigger:
    trigger = CodeChangeTrigger(registered_model="churn_classifier", fingerprint="new", poll_interval=0.01)
    monkeypatch.setattr(trigger, "client_settings", lambda: {"base_url": "http://mlflow", "transport": transport})
    trigger.asset_state_store = store  # type: ignore[assignment]
    return trigger


async def _first_event(trigger: CodeChangeTrigger, within: float = 0.5):
    async def first():
        async for event in trigger.run():
            return event
        return None

    try:
        return await asyncio.wait_for(first(), within)
    except TimeoutError:
        return None


def test_serialize_round_trips():
    trigger = CodeChangeTrigger(registered_model="m", fingerprint="f", mlflow_conn_id="c", poll_interval=30)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops.triggers.code_change.CodeChangeTrigger"
    assert CodeChangeTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_a_trivial_spec_edit_keeps_the_watcher_and_a_real_one_replaces_it():
    from airflow_mlops.factories.assets import code_change_asset

    def watcher_hash(raw: dict) -> int:
        asset = code_change_asset(parse_spec(yaml.safe_dump(raw)), "mlflow_default")
        assert asset is not None
        return BaseEventTrigger.hash(*asset.watchers[0].trigger.serialize())

    raw = yaml.safe_load(CHURN.read_text())
    before = watcher_hash(raw)
    raw["description"], raw["schedule"]["cron"] = "edited", "0 5 * * *"
    assert watcher_hash(raw) == before
    raw["model"]["seed"] = 1
    assert watcher_hash(raw) != before
    raw["schedule"]["on_code_change"] = False
    assert code_change_asset(parse_spec(yaml.safe_dump(raw)), "mlflow_default") is None


def test_fires_once_for_a_change_and_not_again_after_a_restart(monkeypatch):
    store = Store()
    champion = {"version": "1", "tags": {"training_fingerprint": "old"}}
    event = asyncio.run(_first_event(_trigger(monkeypatch, _registry(champion), store)))
    assert event is not None and event.payload["fingerprint"] == "new" and event.payload["champion_version"] == "1"
    assert store.values["fired"][0]["fingerprint"] == "new"
    # The triggerer restarts the trigger (or a new triggerer takes it): the stored key keeps it quiet.
    assert asyncio.run(_first_event(_trigger(monkeypatch, _registry(champion), store))) is None


@pytest.mark.parametrize(
    ("champion", "trained"),
    [
        (None, False),  # no model yet
        ({"version": "1", "tags": {}}, False),  # a champion from before the tag
        ({"version": "2", "tags": {"training_fingerprint": "new"}}, False),  # the change was promoted
        ({"version": "1", "tags": {"training_fingerprint": "old"}}, True),  # trained, the gate kept v1
    ],
)
def test_no_event_when_there_is_nothing_to_retrain(monkeypatch, champion, trained):
    store = Store()
    assert asyncio.run(_first_event(_trigger(monkeypatch, _registry(champion, trained), store))) is None
    assert "fired" not in store.values


def test_a_registry_outage_is_logged_and_retried_not_raised(monkeypatch):
    calls = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, text="down")

    trigger = _trigger(monkeypatch, httpx.MockTransport(down), Store())
    assert asyncio.run(_first_event(trigger, within=0.3)) is None
    assert len(calls) >= 2  # backed off and looked again
