"""FastAPI app behind the plugin page: pipelines, their DAGs, inboxes, open claims and champions."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse


def pipelines_dir() -> Path:
    from airflow_mlops.core.settings import PIPELINES_ENV

    return Path(os.environ.get(PIPELINES_ENV, "include/pipelines"))


def pipeline_summaries() -> list[dict[str, Any]]:
    """One entry per spec file: its DAGs and inboxes, or the error that makes it unusable."""
    from airflow_mlops.core import settings
    from airflow_mlops.core.spec import SpecError, load_spec

    out: list[dict[str, Any]] = []
    for path in sorted(pipelines_dir().glob("*.y*ml")):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            out.append({"spec": str(path), "error": str(exc)})
            continue
        entry: dict[str, Any] = {
            "spec": str(path),
            "name": spec.name,
            "model": spec.registered_model_name,
            "dags": [f"{spec.name}_{kind}" for kind in ("training", "scoring", "monitoring")],
            "inboxes": {k: settings.landing_dir(spec.name, k) for k in ("training", "scoring")},
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
    its ``claim_id``, ``age_seconds``, ``deliveries`` and ``files`` (see ``core.claim_recovery``).
    """
    from airflow_mlops.core import settings
    from airflow_mlops.core.claim_recovery import stranded
    from airflow_mlops.core.landing import open_claims

    out: dict[str, Any] = {}
    for kind, lake_kind in LAKE_OF_INBOX.items():
        lake = settings.lake_dir(pipeline, lake_kind)
        try:
            out[kind] = {"open": len(open_claims(lake)), "stranded": stranded(lake)}
        except Exception as exc:  # the page must render even when the store is down
            out[kind] = {"error": str(exc)}
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
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        return {}
    from airflow_mlops.core import registry

    try:
        current = registry.champion(tracking_uri, model_name)
        history = registry.promotion_history(tracking_uri, model_name) if current else []
    except Exception as exc:  # the page must render even when MLflow is down
        return {"champion_error": str(exc)}
    return {"champion": str(current.version) if current else None, "promotions": history[-5:]}


def _version(value: str | None) -> str:
    return f"v{value}" if value else "(none)"


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
            f"<td>{html.escape(p['model'])} champion: {_version(p.get('champion'))}</td><td>{promotions}</td></tr>"
        )
    return (
        "<!doctype html><html><head><title>airflow-mlops</title><style>"
        "body{font-family:sans-serif;margin:1rem}td,th{border:1px solid #ccc;padding:.4rem;vertical-align:top}"
        "table{border-collapse:collapse}</style></head><body><h2>MLOps pipelines</h2>"
        "<table><tr><th>pipeline</th><th>DAGs</th><th>landing inboxes</th><th>landing claims</th><th>model</th>"
        f"<th>recent promotions</th></tr>{''.join(rows)}</table></body></html>"
    )


async def require_airflow_user(request: Request) -> None:
    """Only users logged in to Airflow (bearer token or the UI's session cookie) may read the page.

    Airflow mounts plugin apps without its own authentication, so the app checks itself.
    """
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    await resolve_user_from_token(token)


def create_app(require_user: bool = True) -> FastAPI:
    """The plugin's app; ``require_user=False`` only for tests outside an Airflow api-server."""
    dependencies = [Depends(require_airflow_user)] if require_user else []
    app = FastAPI(title="airflow-mlops", description="Pipelines managed by airflow-mlops.", dependencies=dependencies)

    @app.get("/api/pipelines")
    def list_pipelines() -> list[dict[str, Any]]:
        return pipeline_summaries()

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return render(pipeline_summaries())

    return app
