"""Who is asking, and what Airflow lets them do: the dependency every route of the page's app has.

Airflow mounts plugin apps without its own authentication, so the app resolves the user the
api-server's way (``get_user``: a bearer token wins over the UI's ``_token`` cookie; 401
without either, 403 for an invalid token) and asks the api-server's auth manager per DAG:

- read: the pipeline is shown only when each of its DAGs may be read;
- trigger (POST a DAG run of the training DAG): the page offers "retrain";
- edit (PUT the training DAG): the page may move the champion (rollback);
- approve (PUT the DAG's human-in-the-loop details): the page offers approve / reject.

State-changing routes are CSRF-safe: the UI's cookie is ``SameSite=Lax`` (a cross-site POST
does not carry it), and they also require the ``X-Airflow-MLOps`` header and a JSON body
(a cross-site form cannot send either without a CORS preflight that this app never
answers), and refuse an ``Origin`` other than the request's own host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

ACTION_HEADER = "X-Airflow-MLOps"


@dataclass
class Viewer:
    """The request's user as the page needs them; ``user`` None means no checks (tests outside Airflow)."""

    name: str
    may_read_dag: Callable[[str], bool] | None
    may_see_errors: bool
    _may: Callable[[str, str, str | None], bool] | None = None

    def may(self, method: str, dag_id: str, entity: str | None = None) -> bool:
        """Whether the auth manager allows ``method`` on the DAG (or one of its entities, e.g. RUN)."""
        return True if self._may is None else self._may(method, dag_id, entity)


def _airflow_viewer(user: Any) -> Viewer:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
    from airflow.configuration import conf

    manager = get_auth_manager()
    multi_team = conf.getboolean("core", "multi_team", fallback=False)

    def details(dag_id: str) -> Any:
        team = None
        if multi_team:  # as the api-server's own requires_access_dag asks it
            from airflow.models.dag import DagModel

            team = DagModel.get_team_name(dag_id)
        return DagDetails(id=dag_id, team_name=team)

    def may(method: str, dag_id: str, entity: str | None) -> bool:
        access = DagAccessEntity[entity] if entity else None
        verb: Any = method  # one of GET, POST, PUT, DELETE
        return bool(manager.is_authorized_dag(method=verb, access_entity=access, details=details(dag_id), user=user))

    return Viewer(
        name=str(user.get_name()),
        may_read_dag=lambda dag_id: may("GET", dag_id, None),
        may_see_errors=bool(manager.is_authorized_view(access_view=AccessView.IMPORT_ERRORS, user=user)),
        _may=may,
    )


def user_dependency(require_user: bool) -> Callable[[Request], Any]:
    """The dependency of every route: puts the ``Viewer`` on ``request.state.viewer``.

    With ``require_user`` False (tests outside an api-server) nothing is checked.
    """
    if not require_user:

        def no_user(request: Request) -> None:
            request.state.viewer = Viewer(name="anonymous (no auth)", may_read_dag=None, may_see_errors=True)

        return no_user

    async def airflow_user(request: Request) -> None:
        # Imported per request (cached by Python after the first): the api-server has these loaded;
        # other processes that load plugins (scheduler, workers) never pay for them.
        from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

        user = await get_user(request, None, await bearer_scheme(request))
        request.state.viewer = _airflow_viewer(user)

    return airflow_user


def require_action_request(request: Request) -> None:
    """Refuse a state-changing request a cross-site page could have made with the user's cookie."""
    if request.headers.get(ACTION_HEADER) != "1":
        raise HTTPException(403, f"an action needs the {ACTION_HEADER}: 1 header (sent by the model page)")
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, "an action's body must be JSON")
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise HTTPException(403, f"cross-origin action refused (Origin {origin})")
