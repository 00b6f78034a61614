"""The monitoring DAG's Deadline Alert: a run that has not succeeded in time opens ``monitoring_late``.

``factories.monitoring`` declares, with ``monitoring.max_run_minutes``::

    DAG(..., deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=max_run_minutes),
        callback=AsyncCallback(MonitoringDeadlineNotifier, kwargs={"pipeline": ..., "conn_id": ...}),
    ))

How Airflow 3.3.2 runs it: the scheduler stores one deadline per run when the run is queued and
deletes it when the run **succeeds** (``DagRun.update_state``); a run that failed, hangs, or
waits for a worker past the deadline misses it, and the scheduler queues the callback. An
``AsyncCallback`` runs in the **triggerer** (``airflow.triggers.callback.CallbackTrigger``): it
imports this class and awaits ``MonitoringDeadlineNotifier(**kwargs, context=...)`` (a
``BaseNotifier`` is awaitable: ``__await__`` runs ``async_notify``), the context holding only
the run as JSON (``dag_run``) and the deadline (``deadline``): no task instance, no templates.

The callback opens the ``monitoring_late`` incident in the pipeline's incident state
(``core.operations.incidents``) and posts its alert to the webhook when it is new: a second late
run while the incident is open sends nothing. The health check of a later run whose drift check
did not fail closes it and sends the recovery. Light at import time (the triggerer and the DAG
processor import it): the store and httpx are imported when it runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier

from airflow_mlops.notifiers.webhook import health_payload, post_json, webhook_url


class MonitoringDeadlineNotifier(BaseNotifier):
    """Open the ``monitoring_late`` incident of ``pipeline`` and post its alert to ``conn_id``'s webhook.

    :param pipeline: the pipeline whose incident state is written.
    :param max_run_minutes: the deadline's interval, named in the incident's summary.
    :param conn_id: Airflow connection of the webhook (None: the incident is only recorded, for the pages).
    """

    def __init__(
        self,
        *,
        pipeline: str,
        max_run_minutes: float,
        conn_id: str | None = None,
        timeout_seconds: float = 10.0,
        context: Any = None,
    ) -> None:
        super().__init__(context=context)
        self.pipeline = pipeline
        self.max_run_minutes = max_run_minutes
        self.conn_id = conn_id
        self.timeout_seconds = timeout_seconds

    async def async_notify(self, context: Any) -> None:
        import asyncio

        url = webhook_url(await BaseHook.aget_connection(self.conn_id)) if self.conn_id else None
        await asyncio.to_thread(self.open_and_send, dict(context or {}), url)

    def notify(self, context: Any) -> None:
        url = webhook_url(BaseHook.get_connection(self.conn_id)) if self.conn_id else None
        self.open_and_send(dict(context or {}), url)

    def open_and_send(self, context: dict[str, Any], url: str | None, now: dt.datetime | None = None) -> bool:
        """Open the incident (no-op when it is open) and post its alert while the webhook has not taken
        it; return whether this call opened it."""

        from airflow_mlops.core.operations import incidents
        from airflow_mlops.core.operations.health import LATE, duration

        now = now or dt.datetime.now(dt.UTC)
        found = context.get("dag_run")
        run: dict[str, Any] = found if isinstance(found, dict) else {}
        run_id, dag_id = run.get("run_id", "?"), run.get("dag_id", "?")
        queued = run.get("queued_at")
        summary = (f"monitoring run {run_id} has not succeeded {duration(self.max_run_minutes * 60)} after it was "
                   f"queued (at {queued}; state {run.get('state', 'unknown')})")  # fmt: skip
        state = incidents.load(self.pipeline)
        by = f"deadline of {dag_id}/{run_id}"
        opened = incidents.open_incident(state, LATE, summary, queued, self.pipeline, now, by)
        incidents.save(self.pipeline, state)
        waiting = [m["id"] for m in incidents.pending(state) if m["incident"]["check"] == LATE]
        if url is None or not waiting:
            return opened

        def send(key: str, message: Any) -> None:
            post_json(url, health_payload(message, context), self.timeout_seconds, str(self.conn_id))

        # The health check's HealthWebhookNotifier of the same connection has this key: it sends nothing twice.
        incidents.deliver(self.pipeline, [f"webhook:{self.conn_id}"], send, only=waiting, settle=False)
        return opened
