"""The Airflow plugin: an "MLOps" overview in the navigation and a "Model" tab on every DAG.

Both are external views (iframes of the same origin) of the small FastAPI app in ``ui.web``,
mounted at ``/mlops``: the overview lists every pipeline; the DAG tab shows the page of the
pipeline the DAG belongs to (champion, timeline, card, monitoring, data quality, actions).
Every Airflow process loads plugins (scheduler, dag-processor, workers, triggerer), and only
the api-server serves the app: so this module imports nothing but Airflow's plugin base, and
the app (FastAPI and the rest) is built on its first request (``LazyApp``).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin


class LazyApp:
    """An ASGI app that builds ``ui.web.create_app()`` on its first call and hands every call to it."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_mlops.ui.web import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class AirflowMlopsPlugin(AirflowPlugin):
    name = "airflow_mlops"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": "/mlops", "name": "airflow-mlops"}]
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
