"""FastAPI app behind the plugin page: pipelines, their DAGs, inboxes, open claims and champions.

Airflow mounts plugin apps without its own authentication, so every route of this app,
``/docs``, ``/redoc`` and ``/openapi.json`` included, depends on the api-server's own
``get_user`` (a bearer token wins over the UI's session cookie; 401 without either, 403 for
an invalid token). A user sees a pipeline only when the auth manager lets them read each of
its DAGs, and a spec that does not load only with read access to import errors. Every route
is a GET that changes nothing, so a cross-site request cannot act with the cookie; a route
that changes state must check its own permission (a test keeps the app read-only). Errors
of MLflow and of the object store are shown through ``core.redaction.describe_error``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

# Which pipelines the request's user may see: (dag_id) -> may read it, (view) -> may see it.
Access = Callable[[str], bool]


def pipelines_dir() -> Path:
    from airflow_mlops.layout import PIPELINES_ENV

    return Path(os.environ.get(PIPELINES_ENV, "include/pipelines"))


def pipeline_summaries(may_read_dag: Access | None = None, may_see_errors: bool = True) -> list[dict[str, Any]]:
    """One entry per spec file: its DAGs and inboxes, or the error that makes it unusable.

    ``may_read_dag`` (None: everything) hides a pipeline unless each of its DAGs passes it;
    ``may_see_errors`` False hides the specs that do not load.
    """
    from airflow_mlops import layout
    from airflow_mlops.spec import SpecError, load_spec

    out: list[dict[str, Any]] = []
    for path in sorted(pipelines_dir().glob("*.y*ml")):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            if may_see_errors:
                out.append({"spec": str(path), "error": str(exc)})
            continue
        dags = [f"{spec.name}_{kind}" for kind in ("training", "scoring", "monitoring")]
        if may_read_dag is not None and not all(may_read_dag(dag) for dag in dags):
            continue
        entry: dict[str, Any] = {
            "spec": str(path),
            "name": spec.name,
            "model": spec.registered_model_name,
            "dags": dags,
            "inboxes": {k: layout.landing_dir(spec.name, k) for k in ("training", "scoring")},
            "claims": claims_summary(spec.name),
        }
        entry.update(champion_summary(spec.registered_model_name))
        out.append(entry)
    return out


LAKE_OF_INBOX = {"training": "labeled", "scoring": "scoring"}  # as factories.assets wires the triggers


def claims_summary(pipeline: str) -> dict[str, Any]:
    """Per inbox: how many landing claims are open, and the stranded ones (files nobody processes yet).

    ``stranded`` lists claims never delivered (``state: claiming``; ``claimer`` says whether
    their claimer is alive or why it is gone) and claims delivered without an ack yet, each with
    its ``claim_id``, ``age_seconds``, ``deliveries`` and ``files`` (see ``core.landing.recovery``).
    """
    from airflow_mlops import layout
    from airflow_mlops.core.landing.delivery import open_claims
    from airflow_mlops.core.landing.recovery import stranded
    from airflow_mlops.core.redaction import describe_error

    out: dict[str, Any] = {}
    for kind, lake_kind in LAKE_OF_INBOX.items():
        lake = layout.lake_dir(pipeline, lake_kind)
        try:
            out[kind] = {"open": len(open_claims(lake)), "stranded": stranded(lake)}
        except Exception as exc:  # the page must render even when the store is down
            out[kind] = {"error": describe_error(exc)}
    return out


def _claims_cell(claims: dict[str, Any]) -> str:
    lines = []
    for kind, state in claims.items():
        if "error" in state:
            lines.append(f"{kind}: cannot read the claims: {html.escape(state['error'])}")
            continue
        line = f"{kind}: {state['open']} open, {len(state['stranded'])} stranded"
        for entry in state["stranded"]:
            line += html.escape(
                f"; {entry['claim_id']} ({entry['state']}, {entry['age_seconds']:.0f} s): {', '.join(entry['files'])}"
            )
        lines.append(line)
    return "<br>".join(lines)


def champion_summary(model_name: str) -> dict[str, Any]:
    """The champion's version and its last five promotions; ``champion_error`` when MLflow fails.

    The error is redacted: a tracking URI with credentials in it must not reach the page.
    """
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        return {}
    from airflow_mlops.core.redaction import describe_error
    from airflow_mlops.core.registry.client import Registry

    try:
        registry = Registry(tracking_uri)
        current = registry.champion(model_name)
        history = registry.promotion_history(model_name) if current else []
    except Exception as exc:  # the page must render even when MLflow is down
        return {"champion_error": describe_error(exc)}
    return {"champion": str(current.version) if current else None, "promotions": history[-5:]}


def _version(value: str | None) -> str:
    return f"v{value}" if value else "(none)"


def _champion_cell(pipeline: dict[str, Any]) -> str:
    if "champion_error" in pipeline:
        return f"cannot ask MLflow: {html.escape(pipeline['champion_error'])}"
    return _version(pipeline.get("champion"))


def render(pipelines: list[dict[str, Any]]) -> str:
    rows = []
    for p in pipelines:
        if "error" in p:
            rows.append(
                f"<tr><td>{html.escape(p['spec'])}</td><td colspan=5><pre>{html.escape(p['error'])}</pre></td></tr>"
            )
            continue
        dags = " ".join(f'<a href="/dags/{d}" target="_top">{d}</a>' for d in p["dags"])
        inboxes = "<br>".join(f"{k}: <code>{html.escape(v)}</code>" for k, v in p["inboxes"].items())
        promotions = "<br>".join(
            html.escape(f"{_version(r['from_version'])} -> v{r['to_version']} at {r['at']}: {r['reason']}")
            for r in p.get("promotions", [])
        )
        rows.append(
            f"<tr><td>{html.escape(p['name'])}</td><td>{dags}</td><td>{inboxes}</td>"
            f"<td>{_claims_cell(p.get('claims', {}))}</td>"
            f"<td>{html.escape(p['model'])} champion: {_champion_cell(p)}</td><td>{promotions}</td></tr>"
        )
    return (
        "<!doctype html><html><head><title>airflow-mlops</title><style>"
        "body{font-family:sans-serif;margin:1rem}td,th{border:1px solid #ccc;padding:.4rem;vertical-align:top}"
        "table{border-collapse:collapse}</style></head><body><h2>MLOps pipelines</h2>"
        "<table><tr><th>pipeline</th><th>DAGs</th><th>landing inboxes</th><th>landing claims</th><th>model</th>"
        f"<th>recent promotions</th></tr>{''.join(rows)}</table></body></html>"
    )


def _airflow_access(user: Any) -> tuple[Access, bool]:
    """What ``user`` may see, asked of the api-server's auth manager: (DAG read check, import errors)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagDetails
    from airflow.configuration import conf

    manager = get_auth_manager()
    multi_team = conf.getboolean("core", "multi_team", fallback=False)

    def may_read_dag(dag_id: str) -> bool:
        team = None
        if multi_team:  # as the api-server's own requires_access_dag asks it
            from airflow.models.dag import DagModel

            team = DagModel.get_team_name(dag_id)
        return bool(manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id, team_name=team), user=user))

    return may_read_dag, bool(manager.is_authorized_view(access_view=AccessView.IMPORT_ERRORS, user=user))


def _user_dependency(require_user: bool) -> Callable[[Request], Any]:
    """The dependency of every route: puts the Airflow user's access on ``request.state.mlops_access``.

    With ``require_user`` False (tests outside an api-server) nothing is checked: None.
    """
    if not require_user:

        def no_user(request: Request) -> None:
            request.state.mlops_access = None

        return no_user
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    async def airflow_user(request: Request) -> None:
        # The api-server's own resolution: a bearer token first, else the UI's session cookie.
        user = await get_user(request, None, await bearer_scheme(request))
        request.state.mlops_access = _airflow_access(user)

    return airflow_user


def create_app(require_user: bool = True) -> FastAPI:
    """The plugin's app; ``require_user=False`` only for tests outside an Airflow api-server.

    FastAPI's own ``/docs``, ``/redoc`` and ``/openapi.json`` would be served without the
    app's dependencies; they are replaced by routes that have them.
    """
    user_access = _user_dependency(require_user)
    app = FastAPI(
        title="airflow-mlops",
        description="Pipelines managed by airflow-mlops.",
        dependencies=[Depends(user_access)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def summaries(request: Request) -> list[dict[str, Any]]:
        access: tuple[Access, bool] | None = request.state.mlops_access
        return pipeline_summaries() if access is None else pipeline_summaries(*access)

    @app.get("/api/pipelines")
    def list_pipelines(request: Request) -> list[dict[str, Any]]:
        return summaries(request)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> str:
        return render(summaries(request))

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
    """Where the app is mounted (``/mlops`` in the api-server), for the docs pages' links."""
    return str(request.scope.get("root_path", "")).rstrip("/")
