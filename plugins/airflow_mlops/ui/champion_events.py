"""Telling Airflow that the champion moved when no task moved it: the champion Asset event.

The promote task emits the pipeline's champion Asset event (``mlops.<pipeline>.champion``, see
``factories.assets``) as its outlet, with the move's record as metadata; DAGs scheduled on that
asset (a deploy, a scoring run) start from it. A rollback made outside a task (the command
line, the UI page) moves the alias too, and must send the same event, else those DAGs never
hear of it. Two ways, the same metadata (``champion_event_extra``: ``{"model": <name>, **record}``,
the ``PromotionRecord`` of ``core.registry.promotion``):

- ``emit_champion_event``: in a process that holds Airflow's metadata database (the api-server,
  where the UI's routes run), through Airflow's ``AssetManager``, as the REST API does;
- ``post_champion_event``: anywhere, through the api-server's REST API
  (``POST /api/v2/assets/events``), as the command line does (``airflow-mlops rollback
  --airflow-url``). Airflow adds ``from_rest_api: true`` to the metadata.

Only the asset's name is looked up (its URI depends on the artifact root of the process that
declared it). The asset exists once a DAG that declares it was parsed; before, there is
nobody to tell and both raise ``LookupError``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)


class RestClient(Protocol):
    """What ``post_champion_event`` needs of a client of the REST API (``devstack.rest.AirflowClient``)."""

    def asset_id(self, name: str) -> int | None: ...

    def create_asset_event(self, asset_id: int, extra: dict[str, Any]) -> dict[str, Any]: ...


def champion_asset_name(pipeline: str) -> str:
    """The champion Asset's name (as ``factories.assets.pipeline_assets`` declares it)."""
    return f"mlops.{pipeline}.champion"


def champion_event_extra(model: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The event's metadata: what the promote and rollback tasks put on their outlet event."""
    return {"model": model, **dict(record)}


def emit_champion_event(pipeline: str, model: str, record: Mapping[str, Any], session: Any = None) -> int:
    """Register the champion Asset event of ``pipeline`` in Airflow's metadata database; its id.

    For code running inside the api-server (or the scheduler): DAGs scheduled on the asset
    are queued as for a task's outlet event. ``session``: a SQLAlchemy session of Airflow's
    database (default: a new one, committed here). Raises ``LookupError`` when Airflow does
    not know the asset (no DAG declaring it was parsed).
    """
    from contextlib import nullcontext

    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    name = champion_asset_name(pipeline)
    with create_session() if session is None else nullcontext(session) as db:
        candidates = list(db.scalars(select(AssetModel).where(AssetModel.name == name)))
        if not candidates:
            raise LookupError(f"Airflow knows no asset named '{name}': no DAG declaring it was parsed yet")
        # The one a DAG still declares (active), else the newest.
        asset = max(candidates, key=lambda a: (a.active is not None, a.id))
        event = asset_manager.register_asset_change(
            asset=asset, extra=champion_event_extra(model, record), source_is_api=True, session=db
        )
        if event is None:
            raise LookupError(f"Airflow did not register an event for asset '{name}'")
        db.flush()
        log.info("champion event %s of %s sent: v%s -> v%s", event.id, name, record.get("from_version"),
                 record.get("to_version"))  # fmt: skip
        return int(event.id)


def post_champion_event(client: RestClient, pipeline: str, model: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Send the champion Asset event of ``pipeline`` through the REST API; the event Airflow created.

    Raises ``LookupError`` when Airflow does not know the asset, and the client's HTTP error
    when the api-server refuses (a user without permission to create asset events: 403).
    """
    name = champion_asset_name(pipeline)
    asset_id = client.asset_id(name)
    if asset_id is None:
        raise LookupError(f"Airflow knows no asset named '{name}': no DAG declaring it was parsed yet")
    return client.create_asset_event(asset_id, champion_event_extra(model, record))
