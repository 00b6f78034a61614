"""The provider metadata as the installed Airflow reads it: the ``mlflow`` connection form and the
extra links, through the providers manager and the api-server's connection-form service."""

from __future__ import annotations

import importlib

import pytest

from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.provider_info import MLFLOW_CONNECTION, get_provider_info

pytestmark = pytest.mark.unit


def test_provider_info_names_real_modules_and_classes():
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for module in info[kind][0]["python-modules"]:
            importlib.import_module(module)
    for dotted in (*info["extra-links"], info["connection-types"][0]["hook-class-name"]):
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted


def test_the_declared_connection_type_is_the_hooks():
    # Airflow reads the form from provider_info without importing the hook: the two must agree.
    assert MLFLOW_CONNECTION["connection-type"] == MlflowHook.conn_type
    assert MLFLOW_CONNECTION["hook-name"] == MlflowHook.hook_name
    assert "get_ui_field_behaviour" not in MlflowHook.__dict__  # deprecated since Airflow 3.2: declared instead


def test_the_providers_manager_lists_the_mlflow_connection_type_with_its_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    meta = {m.connection_type: m for m in manager.iter_connection_type_hook_ui_metadata()}["mlflow"]
    assert (meta.hook_name, meta.hook_class_name) == ("MLflow", "airflow_mlops.hooks.mlflow.MlflowHook")
    behaviour = meta.field_behaviour
    assert behaviour["hidden_fields"] == ["schema"]
    assert behaviour["relabeling"]["host"] == "Tracking URI"
    widgets = {w.field_name: w for k, w in manager._connection_form_widgets_from_metadata.items() if "__mlflow__" in k}
    assert set(widgets) == {"token", "registry_uri", "ui_url"}
    assert widgets["token"].is_sensitive and not widgets["ui_url"].is_sensitive
    assert "airflow_mlops.operators.links.MlflowRunLink" in manager.extra_links_class_names


def test_the_connections_form_of_the_api_server_shows_the_mlflow_fields():
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}["mlflow"]
    assert meta.hook_name == "MLflow"
    fields = meta.standard_fields
    assert fields.url_schema.hidden and not fields.host.hidden
    assert (fields.host.title, fields.login.title) == ("Tracking URI", "Username (MLflow basic auth)")
    extra = meta.extra_fields
    assert extra["token"]["schema"] == {"type": ["string", "null"], "format": "password", "title": "Bearer token"}
    assert extra["ui_url"]["schema"]["title"] == "MLflow UI URL"
