"""Provider metadata: makes the hooks, operators, sensors, triggers, the ``redis+list`` message
queue, extra links and the ``mlflow`` connection type known to Airflow (connection form, provider list).

The connection form is declared here, as data (``hook-name``, ``ui-field-behaviour``,
``conn-fields``): Airflow 3.3's providers manager reads it without importing the hook (the
hook's ``get_ui_field_behaviour`` is deprecated since 3.2), and the api-server's
``/ui/connections/hook_meta`` hands it to the Connections form.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops import __version__

INTEGRATION = "airflow-mlops"

# The form of an `mlflow` connection: what hooks.mlflow.MlflowHook reads, labelled for people.
# Extras are stored in the connection's extra JSON under these names (extra.token, ...).
MLFLOW_CONNECTION: dict[str, Any] = {
    "connection-type": "mlflow",
    "hook-class-name": "airflow_mlops.hooks.mlflow.MlflowHook",
    "hook-name": "MLflow",
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {
            "host": "Tracking URI",
            "port": "Port (http(s) only, when not in the URI)",
            "login": "Username (MLflow basic auth)",
            "password": "Password (MLflow basic auth)",
        },
        "placeholders": {
            "host": "http://mlflow:5000 or sqlite:////data/mlflow.db",
            "port": "5000",
            "login": "empty without MLflow authentication",
            "password": "empty without MLflow authentication",
        },
    },
    "conn-fields": {
        "token": {
            "label": "Bearer token",
            "description": "MLflow's MLFLOW_TRACKING_TOKEN, instead of username and password.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "registry_uri": {
            "label": "Registry URI",
            "description": "The model registry, when it is not the tracking server (default: the tracking URI).",
            "schema": {"type": ["string", "null"]},
        },
        "ui_url": {
            "label": "MLflow UI URL",
            "description": "Where a browser reaches the MLflow UI, for the links on task instances "
            "(default: the tracking URI when it is http or https).",
            "schema": {"type": ["string", "null"]},
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    modules = "airflow_mlops.{}"
    return {
        "package-name": "airflow-mlops",
        "name": "airflow-mlops",
        "description": "The ML lifecycle (data, model, deployment, monitoring) as operators and DAG factories.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["software"]}],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [modules.format("hooks.mlflow"), modules.format("hooks.aws")],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    modules.format(m)
                    for m in (
                        "operators.data",
                        "operators.model",
                        "operators.release",
                        "operators.operations",
                        "operators.approval",
                    )
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [modules.format("sensors.landing")]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    modules.format(m) for m in ("triggers.landing", "triggers.redis_list", "triggers.code_change")
                ],
            }
        ],
        # Message queue providers of common.messaging's MessageQueueTrigger (scheme "redis+list").
        "queues": [modules.format("triggers.redis_list.RedisListQueueProvider")],
        "connection-types": [MLFLOW_CONNECTION],
        "extra-links": [
            modules.format(f"operators.links.{name}")
            for name in ("MlflowRunLink", "ModelVersionLink", "ValidationReportLink", "DriftReportLink")
        ],
        "notifications": ["airflow_mlops.notifiers.webhook.DriftWebhookNotifier"],
    }
