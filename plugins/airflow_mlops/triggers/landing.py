"""Event trigger for data arrival: claims new files in a landing inbox.

Used through ``AssetWatcher`` so that landed files schedule DAGs without a sensor
occupying a worker slot. Each poll moves every complete file from the inbox to the
pipeline's lake (an atomic rename on local storage) and fires one event listing
them, so files that land together are processed together and a claimed file can
never fire twice. The triggerer starts the trigger again after each event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent


class LandingZoneTrigger(BaseEventTrigger):
    """Fire when files land in ``inbox``; the event's payload lists their new URIs.

    :param inbox: folder or prefix URI watched for new files.
    :param destination: folder the files are moved to when claimed.
    :param suffixes: file name endings that count as data (others are ignored).
    :param poll_interval: seconds between scans.
    :param min_age_seconds: leave files modified more recently than this for the next scan.
    """

    def __init__(
        self,
        *,
        inbox: str,
        destination: str,
        suffixes: tuple[str, ...] | list[str] = (".parquet", ".csv"),
        poll_interval: float = 5.0,
        min_age_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.inbox = inbox
        self.destination = destination
        self.suffixes = tuple(suffixes)
        self.poll_interval = poll_interval
        self.min_age_seconds = min_age_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "inbox": self.inbox,
                "destination": self.destination,
                "suffixes": list(self.suffixes),
                "poll_interval": self.poll_interval,
                "min_age_seconds": self.min_age_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops.core.landing import claim_new_files

        while True:
            claimed = await asyncio.to_thread(
                claim_new_files, self.inbox, self.destination, self.suffixes, self.min_age_seconds
            )
            if claimed:
                self.log.info("claimed %d landed file(s) from %s", len(claimed), self.inbox)
                yield TriggerEvent({"claimed": claimed, "inbox": self.inbox})
                return
            await asyncio.sleep(self.poll_interval)


class LandingFilesPresentTrigger(BaseTrigger):
    """Task trigger for ``LandingZoneSensor``: fire once files are present (claims nothing).

    :param inbox: folder or prefix URI to watch.
    :param suffixes: file name endings that count as data.
    :param poll_interval: seconds between scans.
    """

    def __init__(
        self,
        *,
        inbox: str,
        suffixes: tuple[str, ...] | list[str] = (".parquet", ".csv"),
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.inbox = inbox
        self.suffixes = tuple(suffixes)
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"inbox": self.inbox, "suffixes": list(self.suffixes), "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops.core.storage import list_files

        try:
            while True:
                found = await asyncio.to_thread(list_files, self.inbox, self.suffixes)
                if found:
                    yield TriggerEvent({"status": "success", "files": found})
                    return
                await asyncio.sleep(self.poll_interval)
        except OSError as exc:
            yield TriggerEvent({"status": "error", "message": f"cannot list {self.inbox}: {exc}"})
