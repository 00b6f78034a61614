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
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetWatcher

from airflow_mlops.triggers.landing import LandingZoneTrigger

if TYPE_CHECKING:
    from airflow_mlops.spec import LandingSpec


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
