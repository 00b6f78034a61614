"""The Assets one pipeline produces and consumes, named in one place.

- ``landing/training`` and ``landing/scoring``: data arrival, each watched by a
  ``LandingZoneTrigger`` (event-driven scheduling, no sensor holding a slot; each landed
  file is claimed and processed exactly once, see docs/concepts.md);
- ``champion``: the registry alias moved (emitted by the promote task);
- ``predictions``: a scoring run logged predictions (schedules monitoring);
- ``drift``: monitoring found drift (schedules retraining), scores as metadata;
- ``message``: a retrain message arrived on ``schedule.on_message``'s queue (Airflow's
  ``MessageQueueTrigger``; its payload in the event's extra), built by ``message_asset``;
- ``code_change``: the deployed spec's training fingerprint differs from the champion's
  (``CodeChangeTrigger``), built by ``code_change_asset``.

The last two are made only by the training DAG, the one DAG that schedules on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetWatcher

from airflow_mlops.triggers.landing import LandingZoneTrigger

if TYPE_CHECKING:
    from airflow_mlops.spec import LandingSpec, PipelineSpec


def _uri(location: str) -> str:
    return location if "://" in location else f"file://{location}"


@dataclass(frozen=True)
class PipelineAssets:
    landing_training: Asset
    landing_scoring: Asset
    champion: Asset
    predictions: Asset
    drift: Asset


def pipeline_assets(
    pipeline: str, poll_interval: float = 5.0, landing_rules: LandingSpec | None = None
) -> PipelineAssets:
    """Assets of ``pipeline``; landing folders come from the environment (see layout).

    ``landing_rules``: the spec's ``data.landing`` (the producer protocol the watchers apply);
    every DAG of a pipeline passes the same, so the watcher triggers hash the same.
    """
    from airflow_mlops import layout

    rules: dict[str, Any] = {}
    if landing_rules is not None:
        rules = {"settle_seconds": landing_rules.settle_seconds, "require_marker": landing_rules.require_marker}

    def landing(kind: str, lake_kind: str) -> Asset:
        inbox = layout.landing_dir(pipeline, kind)
        trigger = LandingZoneTrigger(
            inbox=inbox, destination=layout.lake_dir(pipeline, lake_kind), poll_interval=poll_interval, **rules
        )
        return Asset(
            name=f"mlops.{pipeline}.landing.{kind}",
            uri=_uri(inbox),
            group="airflow-mlops",
            watchers=[AssetWatcher(name=f"{pipeline}_{kind}_landing", trigger=trigger)],
        )

    def event(kind: str) -> Asset:
        return Asset(
            name=f"mlops.{pipeline}.{kind}",
            uri=_uri(layout.join(layout.artifact_root(), pipeline, "events", kind)),
            group="airflow-mlops",
        )

    return PipelineAssets(
        landing_training=landing("training", "labeled"),
        landing_scoring=landing("scoring", "scoring"),
        champion=event("champion"),
        predictions=event("predictions"),
        drift=event("drift"),
    )


def message_asset(spec: PipelineSpec) -> Asset | None:
    """``mlops.<pipeline>.message``, watched by Airflow's ``MessageQueueTrigger`` on the spec's
    ``schedule.on_message`` queue; None without one. The trigger's kwargs are the spec's only, so
    every parse builds the same trigger (the same hash: the running one stays)."""
    queue = spec.schedule.on_message
    if queue is None:
        return None
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    from airflow_mlops import layout

    trigger = MessageQueueTrigger(**queue.trigger_kwargs())
    return Asset(
        name=f"mlops.{spec.name}.message",
        uri=_uri(layout.join(layout.artifact_root(), spec.name, "events", "message")),
        group="airflow-mlops",
        watchers=[AssetWatcher(name=f"{spec.name}_message", trigger=trigger)],
    )


def code_change_asset(spec: PipelineSpec, mlflow_conn_id: str) -> Asset | None:
    """``mlops.<pipeline>.code_change``, watched by ``CodeChangeTrigger`` with the spec's training
    fingerprint; None when ``schedule.on_code_change`` is off."""
    if not spec.schedule.on_code_change:
        return None
    from airflow_mlops import layout
    from airflow_mlops.triggers.code_change import CodeChangeTrigger

    trigger = CodeChangeTrigger(
        registered_model=spec.registered_model_name,
        fingerprint=spec.training_fingerprint(),
        mlflow_conn_id=mlflow_conn_id,
        poll_interval=spec.schedule.code_change_poll_seconds,
    )
    return Asset(
        name=f"mlops.{spec.name}.code_change",
        uri=_uri(layout.join(layout.artifact_root(), spec.name, "events", "code_change")),
        group="airflow-mlops",
        watchers=[AssetWatcher(name=f"{spec.name}_code_change", trigger=trigger)],
    )
