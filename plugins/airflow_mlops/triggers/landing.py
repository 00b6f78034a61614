"""Triggers for data arrival: claim new files in a landing inbox, or wait for them.

``LandingZoneTrigger`` is used through ``AssetWatcher`` so that landed files schedule DAGs
without a sensor occupying a worker slot. Each poll claims every settled file in the
inbox (copies it into the pipeline's lake, see ``core.landing.inbox``; what "settled" means, the
producer protocol, is ``core.landing.protocol``) and fires one event per
claim, so files that land together are processed together and a claimed file never
fires twice. A claim that no consumer acknowledged is delivered again, with backoff, which
closes the window where the triggerer dies between claiming and storing the event. A claim
never delivered at all (the triggerer killed mid-claim, a disk full) is recovered and
delivered by the next scan of the open claims: at the trigger's next start, after an
error, and every ``scan_interval`` (``core.landing.recovery``).

How Airflow runs it (3.3, ``jobs/triggerer_job_runner.py``): the triggerer starts
``run()``; when it returns after yielding, the trigger is finished and, since its row is
still attached to the asset, started again on the triggerer's next loop. A trigger that
raises is also restarted, on every loop, so ``run()`` catches storage errors itself and
backs off. Watcher triggers are matched to their rows by ``BaseEventTrigger.hash``
(classpath and serialized kwargs): the kwargs must be the same at every DAG parse, and
they are (configuration only, no timestamps).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_mlops.spec.data import DATA_SUFFIXES  # what ingestion reads: one definition, parse-time light

MAX_ERROR_BACKOFF_SECONDS = 300.0


class LandingZoneTrigger(BaseEventTrigger):
    """Fire when files land in ``inbox``; the event's payload names the claim and its URIs.

    Payload: ``claim_id``, ``claim_uri`` (acknowledge there), ``claimed`` (the files' new
    URIs), ``inbox``, ``delivery`` (1 for the first event, more for redeliveries).

    :param inbox: folder or prefix URI watched for new files.
    :param destination: folder the files are moved to when claimed (claims are recorded
        under ``<destination>/_claims``).
    :param suffixes: file name endings that count as data (others are ignored).
    :param poll_interval: seconds between scans.
    :param min_age_seconds: leave files modified more recently than this for a later scan.
    :param settle_seconds: claim a file only once two scans at least this far apart saw the
        same size and modification time (``data.landing.settle_seconds``; 0: no such check).
    :param require_marker: a suffix such as ``.done``: claim ``<name>`` only once
        ``<name>.done`` exists, written after it (``data.landing.require_marker``).
    :param redeliver_after_seconds: deliver a claim again when no consumer acknowledged it
        this long after its delivery; the wait doubles after each redelivery. Also the age
        after which an S3 lock that blocks a file is checked for being stale.
    :param max_deliveries: deliveries of one claim, first included, before giving up on it.
    """

    def __init__(
        self,
        *,
        inbox: str,
        destination: str,
        suffixes: tuple[str, ...] | list[str] = DATA_SUFFIXES,
        poll_interval: float = 5.0,
        min_age_seconds: float = 2.0,
        settle_seconds: float = 0.0,
        require_marker: str | None = None,
        redeliver_after_seconds: float = 3600.0,
        max_deliveries: int = 5,
    ) -> None:
        super().__init__()
        if redeliver_after_seconds <= 0 or max_deliveries < 1:
            raise ValueError("redeliver_after_seconds must be > 0 and max_deliveries >= 1")
        self.inbox = inbox
        self.destination = destination
        self.suffixes = tuple(suffixes)
        self.poll_interval = poll_interval
        self.min_age_seconds = min_age_seconds
        self.settle_seconds = settle_seconds
        self.require_marker = require_marker
        self.redeliver_after_seconds = redeliver_after_seconds
        self.max_deliveries = max_deliveries

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "inbox": self.inbox,
                "destination": self.destination,
                "suffixes": list(self.suffixes),
                "poll_interval": self.poll_interval,
                "min_age_seconds": self.min_age_seconds,
                "settle_seconds": self.settle_seconds,
                "require_marker": self.require_marker,
                "redeliver_after_seconds": self.redeliver_after_seconds,
                "max_deliveries": self.max_deliveries,
            },
        )

    @property
    def scan_interval(self) -> float:
        """Seconds between looks for claims due for redelivery (one LIST of the open claims)."""
        return max(self.poll_interval, min(60.0, self.redeliver_after_seconds / 4))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops.core.landing import delivery
        from airflow_mlops.core.landing import inbox as landing

        # Look at the open claims at every start (a triggerer killed mid-claim left one undelivered),
        # after every error (so did a claim that failed half-way), then every scan_interval.
        next_scan = 0.0
        errors = 0
        while True:
            try:
                found = None
                if time.monotonic() >= next_scan:
                    found = await asyncio.to_thread(
                        delivery.redeliver_due, self.destination, self.redeliver_after_seconds, self.max_deliveries
                    )
                    next_scan = time.monotonic() + self.scan_interval
                if found is None:
                    found = await asyncio.to_thread(
                        landing.claim,
                        self.inbox,
                        self.destination,
                        self.suffixes,
                        self.min_age_seconds,
                        stale_lock_seconds=self.redeliver_after_seconds,
                        settle_seconds=self.settle_seconds,
                        require_marker=self.require_marker,
                    )
            except Exception as exc:  # storage down or misconfigured: keep watching, slower
                errors += 1
                next_scan = 0.0  # a claim this poll left undelivered is recovered by the next one
                delay = min(self.poll_interval * 2**errors, MAX_ERROR_BACKOFF_SECONDS)
                self.log.warning("landing zone %s: %s; next try in %.0f s", self.inbox, exc, delay)
                await asyncio.sleep(delay)
                continue
            errors = 0
            if found is not None:
                self.log.info(
                    "claim %s (delivery %d): %d landed file(s) from %s",
                    found.claim_id,
                    len(found.deliveries),
                    len(found.claimed),
                    self.inbox,
                )
                yield TriggerEvent(found.payload())
                return  # the triggerer starts the trigger again
            await asyncio.sleep(self.poll_interval)


class LandingFilesPresentTrigger(BaseTrigger):
    """Task trigger for ``LandingZoneSensor``: fire once settled files are present (claims nothing).

    It fires once per deferral and the sensor does not defer again after it fired, so it
    cannot loop; the files stay in the inbox for the DAG to handle.

    :param inbox: folder or prefix URI to watch.
    :param suffixes: file name endings that count as data.
    :param poll_interval: seconds between scans.
    :param min_age_seconds: ignore files modified more recently than this (still being written).
    :param settle_seconds: count a file only once two scans this far apart saw it unchanged.
    :param require_marker: count ``<name>`` only once ``<name><marker>`` exists, written after it.
    """

    def __init__(
        self,
        *,
        inbox: str,
        suffixes: tuple[str, ...] | list[str] = DATA_SUFFIXES,
        poll_interval: float = 5.0,
        min_age_seconds: float = 0.0,
        settle_seconds: float = 0.0,
        require_marker: str | None = None,
    ) -> None:
        super().__init__()
        self.inbox = inbox
        self.suffixes = tuple(suffixes)
        self.poll_interval = poll_interval
        self.min_age_seconds = min_age_seconds
        self.settle_seconds = settle_seconds
        self.require_marker = require_marker

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "inbox": self.inbox,
                "suffixes": list(self.suffixes),
                "poll_interval": self.poll_interval,
                "min_age_seconds": self.min_age_seconds,
                "settle_seconds": self.settle_seconds,
                "require_marker": self.require_marker,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops.core.landing.inbox import settled_files

        try:
            while True:
                found = await asyncio.to_thread(
                    settled_files,
                    self.inbox,
                    self.suffixes,
                    self.min_age_seconds,
                    self.settle_seconds,
                    self.require_marker,
                )
                if found:
                    yield TriggerEvent({"status": "success", "files": found})
                    return
                await asyncio.sleep(self.poll_interval)
        except OSError as exc:
            yield TriggerEvent({"status": "error", "message": f"cannot list {self.inbox}: {exc}"})
