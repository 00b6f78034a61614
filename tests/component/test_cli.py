"""``airflow-mlops rollback`` tells Airflow: the champion Asset event through the api-server's REST API.

A real MLflow registry; the api-server is an ``httpx.MockTransport`` that checks the requests
the way Airflow 3.3 takes them (``GET /api/v2/assets?name_pattern=``, ``POST /api/v2/assets/events``
with ``asset_id`` and ``extra``). The real REST route on a real Airflow database is exercised by
``tests/component/ui/test_champion_events.py``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLE_SPEC
from tests.support.model_versions import Versions, two_promoted

pytestmark = pytest.mark.component


@pytest.fixture
def store(tmp_path, spec):
    """v1 then v2 promoted: a rollback restores v1."""
    return two_promoted(tmp_path, spec.registered_model_name)


@pytest.fixture
def airflow(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The api-server as a mock: what it was sent, and how it answers (``status`` of the event POST)."""
    import airflow_mlops.devstack.rest as rest

    seen: dict[str, Any] = {"requests": [], "status": 200}

    def answer(request: httpx.Request) -> httpx.Response:
        seen["requests"].append(request)
        assert request.headers["Authorization"] == "Bearer a-jwt"
        if request.method == "GET" and request.url.path == "/api/v2/assets":
            assert request.url.params["name_pattern"] == "mlops.churn.champion"
            return httpx.Response(200, json={"assets": [{"id": 8, "name": "mlops.churn.champion_old"},
                                                        {"id": 7, "name": "mlops.churn.champion"}]})  # fmt: skip
        if request.method == "POST" and request.url.path == "/api/v2/assets/events":
            if seen["status"] != 200:
                return httpx.Response(seen["status"], json={"detail": "Forbidden"})
            return httpx.Response(200, json={"id": 42, **json.loads(request.content)})
        return httpx.Response(404)

    class MockedClient(rest.AirflowClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, transport=httpx.MockTransport(answer), **kwargs)

    monkeypatch.setattr(rest, "AirflowClient", MockedClient)
    monkeypatch.setenv("AIRFLOW_MLOPS_AIRFLOW_TOKEN", "a-jwt")
    return seen


def _rollback(store: Versions, *extra: str) -> int:
    from airflow_mlops.cli import main

    return main(["rollback", str(EXAMPLE_SPEC), "--tracking-uri", store.registry.tracking_uri, "--reason", "alerts",
                 *extra])  # fmt: skip


def test_a_rollback_sends_the_champion_event_with_the_move_as_metadata(store, airflow, capsys):
    assert _rollback(store, "--airflow-url", "http://airflow.test:8080/") == 0
    posted = json.loads(airflow["requests"][-1].content)
    record = store.registry.promotion_history(store.name)[-1]
    assert posted == {"asset_id": 7, "extra": {"model": store.name, **record}}
    assert record["rollback"] and (record["from_version"], record["to_version"]) == ("2", "1")
    assert "champion asset event 42 sent to Airflow at http://airflow.test:8080/" in capsys.readouterr().out


def test_a_refused_event_says_the_champion_moved_but_airflow_was_not_told(store, airflow, capsys, monkeypatch):
    airflow["status"] = 403
    monkeypatch.setenv("AIRFLOW_MLOPS_AIRFLOW_URL", "http://airflow.test:8080")
    assert _rollback(store) == 3
    err = capsys.readouterr().err
    assert "the champion moved, but Airflow at http://airflow.test:8080 was not told: HTTPStatusError" in err
    assert "Create the event of asset 'mlops.churn.champion' by hand" in err and '"to_version": "1"' in err
    assert str(store.registry.champion(store.name).version) == "1"  # the move itself stands


def test_without_an_api_server_the_rollback_says_airflow_was_not_told(store, capsys, monkeypatch):
    monkeypatch.delenv("AIRFLOW_MLOPS_AIRFLOW_URL", raising=False)
    assert _rollback(store) == 0
    assert "note: Airflow was not told (no --airflow-url or $AIRFLOW_MLOPS_AIRFLOW_URL)" in capsys.readouterr().err
