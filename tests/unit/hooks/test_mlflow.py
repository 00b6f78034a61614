"""The MLflow hook's URIs: tracking, registry and the UI the links open, never with credentials."""

from __future__ import annotations

import json
import os

import pytest

from airflow_mlops.hooks.mlflow import MlflowHook

pytestmark = pytest.mark.unit

CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@pytest.fixture
def connection(monkeypatch):
    for variable in CREDENTIALS:  # recorded, so the values the hook sets are removed afterwards
        monkeypatch.setenv(variable, "")
        monkeypatch.delenv(variable)

    def make(**fields: object) -> MlflowHook:
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", **fields}))
        return MlflowHook(mlflow_conn_id="mlflow_test")

    return make


def test_the_ui_url_is_the_http_tracking_uri_without_credentials(connection):
    hook = connection(host="https://alice:s3cret@mlflow.example.com", port=8443)
    assert hook.ui_url() == "https://mlflow.example.com:8443"
    assert not any(variable in os.environ for variable in CREDENTIALS)  # reading the UI sets no credentials


def test_extra_ui_url_wins_and_loses_its_userinfo(connection):
    hook = connection(host="http://mlflow:5000", extra={"ui_url": "https://bob:pw@mlflow.example.com/"})
    assert hook.ui_url() == "https://mlflow.example.com"
    assert hook.get_uri() == "http://mlflow:5000"


def test_a_database_store_has_no_ui(connection):
    assert connection(host="sqlite:////tmp/m.db").ui_url() is None
    assert connection(host="sqlite:////tmp/m.db", extra={"ui_url": "file:///tmp"}).ui_url() is None


def test_registry_uri_and_token_come_from_the_extras(connection):
    hook = connection(
        host="http://mlflow:5000", extra={"registry_uri": "https://carol:pw@registry:5001", "token": "t0k"}
    )
    assert hook.registry_uri == "https://registry:5001"
    registry = hook.get_conn()
    assert (registry.tracking_uri, registry.registry_uri) == ("http://mlflow:5000", "https://registry:5001")
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "t0k"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("carol", "pw")


def test_without_a_registry_uri_the_registry_is_the_tracking_server(connection):
    hook = connection(host="http://mlflow:5000")
    assert hook.registry_uri == "http://mlflow:5000" == hook.get_conn().registry_uri
