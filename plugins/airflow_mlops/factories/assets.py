"""The Assets one pipeline produces and consumes, named in one place.

- ``landing/training`` and ``landing/scoring``: data arrival, each watched by a
  ``LandingZoneTrigger`` (event-driven scheduling, no sensor holding a slot; each landed
  file is claimed and processed exactly once, see docs/concepts.md);
- ``champion``: the registry alias moved (emitted by the promote task);
- ``predictions``: a scoring run logged predictions (schedules monitoring);
- ``drift``: monitoring found drift (schedules retraining), scores as metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow.sdk import Asset, AssetWatcher

from airflow_mlops.triggers.landing import LandingZoneTrigger


def _uri(location: str) -> str:
    return location if "://" in location else f"file://{location}"


@dataclass(frozen=True)
class PipelineAssets:
    landing_training: Asset
    landing_scoring: Asset
    champion: Asset
    predictions: Asset
    drift: Asset


def pipeline_assets(pipeline: str, poll_interval: float = 5.0) -> PipelineAssets:
    """Assets of ``pipeline``; landing folders come from the environment (see core.settings)."""
    from airflow_mlops.core import settings

    def landing(kind: str, lake_kind: str) -> Asset:
        inbox = settings.landing_dir(pipeline, kind)
        trigger = LandingZoneTrigger(
            inbox=inbox, destination=settings.lake_dir(pipeline, lake_kind), poll_interval=poll_interval
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
            uri=_uri(settings.join(settings.artifact_root(), pipeline, "events", kind)),
            group="airflow-mlops",
        )

    return PipelineAssets(
        landing_training=landing("training", "labeled"),
        landing_scoring=landing("scoring", "scoring"),
        champion=event("champion"),
        predictions=event("predictions"),
        drift=event("drift"),
    )
