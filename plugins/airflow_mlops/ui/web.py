"""FastAPI app behind the plugin's pages: the overview, each pipeline's model page, their JSON and actions.

Mounted by the api-server at ``/mlops`` (``ui.plugin``). Every route, ``/docs``, ``/redoc`` and
``/openapi.json`` included, depends on the Airflow user (``ui.auth``): a pipeline is visible
only to a user who may read each of its DAGs, a spec error only to one who may read import
errors. The pages are one small script (``ui/static/app.js``, built from ``frontend/``) that
reads ``/api/overview`` and ``/api/pipelines/<name>/page``. The one action of this app,
rollback, needs edit rights on the training DAG and is CSRF-safe (``ui.auth``); retraining and
approvals go to Airflow's own REST API from the page. Errors of MLflow and of the object
store are shown through ``core.redaction.describe_error``.
"""

from __future__ import annotations

import html
import mimetypes
import os
from importlib import resources
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from airflow_mlops.ui import summaries
from airflow_mlops.ui.auth import Viewer, require_action_request, user_dependency

STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}


def _viewer(request: Request) -> Viewer:
    viewer: Viewer = request.state.viewer
    return viewer


def _shell(root: str, view: str, pipeline: str = "") -> str:
    """The page: an empty element the script fills, told where the app is mounted and what to show."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>airflow-mlops</title>"
        f"<link rel='stylesheet' href='{root}/static/app.css'></head><body>"
        f"<div id='mlops-app' data-root='{html.escape(root)}' data-view='{view}' "
        f"data-pipeline='{html.escape(pipeline)}'>loading...</div>"
        f"<script src='{root}/static/app.js'></script></body></html>"
    )


class PageState:
    """What the app keeps between requests: the MLflow reader (cached answers) and Airflow's state."""

    def __init__(self, airflow_state: Any | None = None, ttl_seconds: float = 10.0) -> None:
        self._readers: dict[str, Any] = {}
        self._airflow_state = airflow_state
        self.ttl = ttl_seconds

    def reader(self) -> Any | None:
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri or not uri.startswith(("http://", "https://")):
            return None
        if uri not in self._readers:
            from airflow_mlops.ui.mlflow_reader import MlflowReader

            self._readers[uri] = MlflowReader(uri, ttl_seconds=self.ttl)
        return self._readers[uri]

    def airflow(self) -> Any:
        if self._airflow_state is None:
            from airflow_mlops.ui.airflow_state import DatabaseState

            self._airflow_state = DatabaseState()
        return self._airflow_state

    def forget(self) -> None:
        for reader in self._readers.values():
            reader.cache.clear()


def _spec_for(viewer: Viewer, name: str) -> Any:
    for spec in summaries.readable_specs(viewer.may_read_dag):
        if spec.name == name:
            return spec
    raise HTTPException(404, f"no pipeline named {name!r} that you may read")


def create_app(require_user: bool = True, airflow_state: Any | None = None, ttl_seconds: float = 10.0) -> FastAPI:
    """The plugin's app; ``require_user=False`` and ``airflow_state`` only for tests and benchmarks.

    FastAPI's own ``/docs``, ``/redoc`` and ``/openapi.json`` would be served without the
    app's dependencies; they are replaced by routes that have them.
    """
    app = FastAPI(
        title="airflow-mlops",
        description="Pipelines managed by airflow-mlops: champions, their history, monitoring, data quality.",
        dependencies=[Depends(user_dependency(require_user))],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    state = PageState(airflow_state, ttl_seconds)
    app.state.pages = state

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> str:
        return _shell(_root(request), "overview")

    @app.get("/pipeline/{name}", response_class=HTMLResponse)
    def pipeline_shell(request: Request, name: str) -> str:
        return _shell(_root(request), "pipeline", name)

    @app.get("/dag/{dag_id}", response_class=HTMLResponse)
    def dag_shell(request: Request, dag_id: str) -> str:
        """The DAG tab: the page of the pipeline the DAG belongs to (empty for other DAGs)."""
        for spec in summaries.readable_specs(_viewer(request).may_read_dag):
            if dag_id in summaries.dag_ids_of(spec):
                return _shell(_root(request), "pipeline", spec.name)
        return _shell(_root(request), "none", dag_id)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        body = resources.files("airflow_mlops.ui").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})

    @app.get("/api/pipelines")
    def list_pipelines(request: Request) -> list[dict[str, Any]]:
        """Every spec: its DAGs, landing inboxes, open and stranded claims, champion (or the spec's error)."""
        viewer = _viewer(request)
        return summaries.pipeline_summaries(viewer.may_read_dag, viewer.may_see_errors)

    @app.get("/api/overview")
    def overview(request: Request) -> dict[str, Any]:
        """All pipelines: champion, since, metric vs threshold, last runs, drift, decay, approvals, alerts."""
        from airflow_mlops.ui.pages import overview as build

        viewer = _viewer(request)
        specs = summaries.readable_specs(viewer.may_read_dag)
        rows = build(specs, state.reader(), state.airflow())
        for row, spec in zip(rows, specs, strict=True):
            row.update(summaries.landing_summary(spec))
        errors = summaries.spec_errors() if viewer.may_see_errors else []
        return {"user": viewer.name, "pipelines": rows, "spec_errors": errors}

    @app.get("/api/pipelines/{name}/page")
    def page(request: Request, name: str, runs: int = Query(200, ge=1, le=500)) -> dict[str, Any]:
        """One pipeline: timeline, champion card, monitoring, data quality, approvals, and what the user may do."""
        from airflow_mlops.ui.pages import pipeline_page

        viewer = _viewer(request)
        spec = _spec_for(viewer, name)
        body = pipeline_page(spec, state.reader(), state.airflow(), monitoring_limit=runs)
        training = f"{spec.name}_training"
        body["user"] = viewer.name
        body["permissions"] = {
            "retrain": viewer.may("POST", training, "RUN"),
            "rollback": viewer.may("PUT", training),
            "approve": viewer.may("PUT", training, "HITL_DETAIL"),
        }
        return body

    @app.get("/api/pipelines/{name}/plots/{version}/{plot}", include_in_schema=False)
    def plot(request: Request, name: str, version: str, plot: str) -> Response:
        """An evaluation plot of one of the pipeline's model versions, through the tracking server."""
        from airflow_mlops.ui.registry_view import CARD_PLOTS

        spec = _spec_for(_viewer(request), name)
        reader = state.reader()
        if reader is None or plot not in CARD_PLOTS:
            raise HTTPException(404, "no such plot")
        match = [v for v in reader.versions(spec.registered_model_name) if v["version"] == version]
        if not match or not match[0]["run_id"]:
            raise HTTPException(404, f"no version {version} of {spec.registered_model_name}")
        body = reader.artifact(match[0]["run_id"], f"evaluation/{plot}")
        if body is None:
            raise HTTPException(404, f"v{version} has no {plot}")
        return Response(body, media_type="image/png")

    @app.get("/files/{name}/{path:path}", include_in_schema=False)
    def report_file(request: Request, name: str, path: str) -> Response:
        """A validation report, a GX Data Docs page (and its assets) or a quarantine report of the pipeline."""
        from airflow_mlops import layout
        from airflow_mlops.core.io import storage
        from airflow_mlops.ui.quality_view import pipeline_root, servable_path

        spec = _spec_for(_viewer(request), name)
        if not servable_path(path):
            raise HTTPException(404, "not a report of this pipeline")
        uri = layout.join(pipeline_root(spec.name), path)
        if not storage.exists(uri):
            raise HTTPException(404, f"no such report: {path}")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if path.endswith(".report.json"):
            media = "application/json"
        # Data Docs pages run GX's own scripts; they may not reach this app's cookie-protected actions.
        return Response(
            storage.read_bytes(uri), media_type=media, headers={"Content-Security-Policy": "sandbox allow-scripts"}
        )

    @app.post("/api/pipelines/{name}/rollback", dependencies=[Depends(require_action_request)])
    def rollback(
        request: Request,
        name: str,
        to_version: str = Body(..., embed=True),
        reason: str = Body("", embed=True),
    ) -> dict[str, Any]:
        """Make a servable earlier version the champion; needs edit rights on the training DAG."""
        from airflow_mlops.ui import actions

        viewer = _viewer(request)
        spec = _spec_for(viewer, name)
        if not viewer.may("PUT", f"{spec.name}_training"):
            raise HTTPException(403, f"moving the champion needs edit rights on {spec.name}_training")
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise HTTPException(503, "MLFLOW_TRACKING_URI is not set for the api-server")
        try:
            record = actions.rollback(spec, uri, to_version, reason, viewer.name)
        except actions.ActionRefused as exc:
            raise HTTPException(409, str(exc)) from None
        state.forget()
        return record

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{_root(request)}/openapi.json", title="airflow-mlops - docs")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=f"{_root(request)}/openapi.json", title="airflow-mlops - ReDoc")

    return app


def _root(request: Request) -> str:
    """Where the app is mounted (``/mlops`` in the api-server), for the pages' links."""
    return str(request.scope.get("root_path", "")).rstrip("/")
