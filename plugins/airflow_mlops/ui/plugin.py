"""The Airflow plugin: an "MLOps" page inside the Airflow UI, served by a small FastAPI app.

The page lists every pipeline spec, its DAGs and landing inboxes, and (when
``MLFLOW_TRACKING_URI`` is set for the api-server) the current champion and its
promotion history. Heavy imports happen per request, not when Airflow loads plugins.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops.ui.web import create_app


class AirflowMlopsPlugin(AirflowPlugin):
    name = "airflow_mlops"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/mlops", "name": "airflow-mlops"}]
    external_views = [
        {
            "name": "MLOps pipelines",
            "href": "/mlops/",
            "url_route": "mlops",
            "destination": "nav",
            "category": "browse",
        }
    ]
