"""Provider metadata: makes the hooks, operators, sensors, triggers and the ``mlflow``
connection type known to Airflow (connection form, provider list)."""

from __future__ import annotations

from typing import Any

from airflow_mlops import __version__

INTEGRATION = "airflow-mlops"


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
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [modules.format("triggers.landing")]}],
        "connection-types": [{"connection-type": "mlflow", "hook-class-name": "airflow_mlops.hooks.mlflow.MlflowHook"}],
        "notifications": ["airflow_mlops.notifiers.webhook.DriftWebhookNotifier"],
    }
