"""The Airflow plugin: an "MLOps" overview in the navigation and a "Model" tab on every DAG.

Both are external views (iframes of the same origin) of the small FastAPI app in ``ui.web``,
mounted at ``/mlops``: the overview lists every pipeline; the DAG tab shows the page of the
pipeline the DAG belongs to (champion, timeline, card, monitoring, data quality, actions).
Heavy imports happen per request, not when Airflow loads plugins.
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
        },
        {
            "name": "Model",
            "href": "/mlops/dag/{DAG_ID}",
            "url_route": "mlops-model",
            "destination": "dag",
        },
    ]
