"""What the model page changes: a rollback of the champion, by a person, recorded with their name.

Retraining and approving are Airflow's own acts (a DAG run with ``conf``, a human-in-the-loop
answer): the page's script asks Airflow's REST API for them with the user's session, so
Airflow checks the permission, records the user and writes its audit log. Moving the
``champion`` alias is not an Airflow act, so it is done here, inside the api-server, after
``ui.web`` checked that the user may edit the pipeline's training DAG:

- the move is ``core.registry.promotion.rollback``: it refuses a version that failed its
  gate or has no parity-checked ONNX graph (``RollbackError`` names why), checks the
  version's artifacts against their recorded digests, and records the move in the
  promotion history with ``by`` = the acting user and the reason they gave;
- then the pipeline's ``champion`` Asset gets an event, as after a promotion, so the DAGs and
  serving apps that follow the champion hear of it. Should the event fail, the move stands
  (it is recorded) and the answer says the event is missing.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_mlops.spec import PipelineSpec

log = logging.getLogger(__name__)


class ActionRefused(ValueError):
    """The action cannot be done as asked (names the version and why)."""


def rollback(spec: PipelineSpec, tracking_uri: str, to_version: str, reason: str, user: str) -> dict[str, Any]:
    """Make ``to_version`` the champion; the promotion record, with ``asset_event`` saying if the event went out."""
    from airflow_mlops.core.registry.client import Registry
    from airflow_mlops.core.registry.promotion import RollbackError
    from airflow_mlops.core.registry.promotion import rollback as move_back

    if not str(to_version).isdigit():
        raise ActionRefused(f"not a model version: {to_version!r}")
    registry = Registry(tracking_uri)
    current = registry.champion(spec.registered_model_name)
    if current is not None and str(current.version) == str(to_version):
        raise ActionRefused(f"v{to_version} is the champion already")
    why = (reason or "").strip()[:500] or "rollback from the model page"
    try:
        record = dict(move_back(registry, spec.registered_model_name, by=user, reason=why, to_version=str(to_version)))
    except RollbackError as exc:
        raise ActionRefused(str(exc)) from exc
    record["asset_event"] = emit_champion_event(spec.name, spec.registered_model_name, record)
    return record


def emit_champion_event(pipeline: str, model: str, record: dict[str, Any]) -> str | None:
    """The champion Asset event of the move (``ui.champion_events``, in the api-server's database);
    None when sent, else why not (the move is made and recorded either way)."""
    from airflow_mlops.core.redaction import describe_error
    from airflow_mlops.ui.champion_events import emit_champion_event as emit

    try:
        emit(pipeline, model, record)
    except Exception as exc:  # e.g. no DAG of the pipeline parsed yet, or the database unreachable
        log.warning("champion event of %s not emitted: %s", pipeline, describe_error(exc))
        return f"the champion event was not emitted: {describe_error(exc)}"
    return None
