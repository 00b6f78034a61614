"""Wait for files in a landing inbox, deferring to the triggerer while nothing is there.

The sensor only checks presence: it claims nothing, and fires at most once per try (it
returns at once when files are there, else defers once and completes on the trigger's
event), so it cannot loop. The files stay in the inbox: the DAG must move or claim them
(``core.landing.inbox.claim``), or a later run sees them again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException

from airflow_mlops.triggers.landing import DATA_SUFFIXES, LandingFilesPresentTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class LandingZoneSensor(BaseSensorOperator):
    """Succeed when at least one data file is in ``inbox``; return their URIs.

    For DAGs that prefer a sensor step to the event-driven ``AssetWatcher``
    schedule. It pokes once, then defers (``deferrable=True``, the default).

    :param inbox: folder or prefix URI to watch. (templated)
    :param suffixes: file name endings that count as data.
    :param min_age_seconds: ignore files modified more recently than this (still being written).
    :param settle_seconds: count a file only once two looks this far apart saw it unchanged
        (the first look of a file never counts it when this is set). The looks are remembered
        by the process that makes them: use it deferrable (the triggerer) or in ``poke`` mode,
        not in ``reschedule`` mode, where every poke is a new process.
    :param require_marker: count ``<name>`` only once ``<name><marker>`` (e.g. ``.done``) exists.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("inbox",)

    def __init__(
        self,
        *,
        inbox: str,
        suffixes: Sequence[str] = DATA_SUFFIXES,
        min_age_seconds: float = 2.0,
        settle_seconds: float = 0.0,
        require_marker: str | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.inbox = inbox
        self.suffixes = tuple(suffixes)
        self.min_age_seconds = min_age_seconds
        self.settle_seconds = settle_seconds
        self.require_marker = require_marker
        self.deferrable = deferrable

    def _found(self) -> list[str]:
        from airflow_mlops.core.landing.inbox import settled_files

        return settled_files(self.inbox, self.suffixes, self.min_age_seconds, self.settle_seconds, self.require_marker)

    def poke(self, context: Context) -> bool | Any:
        return bool(self._found())

    def execute(self, context: Context) -> Any:
        found = self._found()
        if found:
            return found
        if not self.deferrable:
            super().execute(context)
            return self._found()
        self.defer(
            trigger=LandingFilesPresentTrigger(
                inbox=self.inbox,
                suffixes=self.suffixes,
                poll_interval=self.poke_interval,
                min_age_seconds=self.min_age_seconds,
                settle_seconds=self.settle_seconds,
                require_marker=self.require_marker,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[str]:
        if event.get("status") != "success":
            raise AirflowException(event.get("message", f"waiting for {self.inbox} failed"))
        return list(event["files"])
