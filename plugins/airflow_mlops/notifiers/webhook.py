"""Drift and health alerts posted as JSON to a webhook (Slack-, Teams- or pager-style endpoints).

The URL comes from an Airflow connection (any type; ``host`` may hold the whole URL, or
``schema``/``host``/``port`` build it, and ``extra.endpoint`` adds a path), so the address
and any token in it stay in Airflow's connection store, not in the spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier


def webhook_url(conn: Any) -> str:
    """The URL an Airflow connection points at."""
    host = str(conn.host or "")
    if not host:
        raise ValueError(f"connection '{conn.conn_id}' has no host: set it to the webhook URL")
    if "://" in host:
        url = host
    else:
        scheme = conn.schema or "https"
        url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    endpoint = (conn.extra_dejson or {}).get("endpoint", "")
    return url.rstrip("/") + ("/" + endpoint.lstrip("/") if endpoint else "")


class WebhookError(RuntimeError):
    """A webhook that refused or could not take a message; the text never holds the URL."""


def post_json(url: str, payload: Any, timeout_seconds: float, conn_id: str) -> None:
    """POST ``payload`` to ``url``; a refusal or a transport failure raises ``WebhookError``
    naming the connection and the status, never the URL: a chat or paging webhook's URL is its
    secret, and the error's first line reaches the task log and the DAG run's note."""
    import httpx

    try:
        response = httpx.post(url, json=payload, timeout=timeout_seconds)
    except httpx.HTTPError as exc:
        raise WebhookError(f"webhook of connection '{conn_id}' not reached: {type(exc).__name__}") from None
    if response.is_error:
        raise WebhookError(
            f"webhook of connection '{conn_id}' answered {response.status_code} {response.reason_phrase}"
        ) from None


class DriftWebhookNotifier(BaseNotifier):
    """POST what the drift event carried (drifted features, scores, model version, report URIs)
    plus the DAG run's identity to the webhook of Airflow connection ``conn_id``.

    Attach it as ``on_success_callback`` of the task that emits the drift event: that task
    succeeds only when drift was found (it skips otherwise).

    :param conn_id: Airflow connection holding the webhook URL. (templated)
    """

    template_fields: Sequence[str] = ("conn_id",)

    def __init__(self, *, conn_id: str, timeout_seconds: float = 10.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout_seconds = timeout_seconds

    def payload(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        event = ti.xcom_pull(task_ids=ti.task_id) or {}
        return {
            # "drift", "performance_decay", "slice_decay", "estimated_decay", joined by "+": why
            # monitoring asks for retraining.
            "alert": "+".join(event.get("retrain_reasons") or ["drift"]),
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            **{key: value for key, value in dict(event).items() if key != "alert"},
        }

    def notify(self, context: Any) -> None:

        url = webhook_url(BaseHook.get_connection(self.conn_id))
        post_json(url, self.payload(context), self.timeout_seconds, self.conn_id)


def health_payload(message: Any, context: Any) -> dict[str, Any]:
    """The JSON of one health message (``core.operations.incidents``): what, since when, open or recovered."""
    incident = dict(message.get("incident") or {})
    ti = context.get("ti") if hasattr(context, "get") else None
    run = context.get("dag_run") if hasattr(context, "get") else None
    dag_id = getattr(ti, "dag_id", None) or (run.get("dag_id") if isinstance(run, dict) else None)
    run_id = getattr(ti, "run_id", None) or (run.get("run_id") if isinstance(run, dict) else None)
    return {
        "alert": incident.get("check"),  # silence, label_lag, champion_age, monitoring_late
        "state": "open" if message.get("kind") == "alert" else "recovered",
        "message_id": message.get("id"),  # the same on a repeat: drop it
        "incident_id": incident.get("id"),
        "pipeline": message.get("pipeline"),
        "summary": incident.get("summary"),
        "since": incident.get("since"),
        "opened_at": incident.get("opened_at"),
        "closed_at": incident.get("closed_at"),
        "at": message.get("at"),
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": getattr(ti, "task_id", None),
    }


class HealthWebhookNotifier(BaseNotifier):
    """POST one monitoring health message (an incident opened, or recovered) to the webhook of
    Airflow connection ``conn_id``.

    The health check task (``HealthCheckOperator``) calls it with the message in the context
    (``mlops_alert``); the monitoring DAG's deadline callback posts the same payload
    (``health_payload``) from the triggerer. Both record the message as taken by
    ``delivery_key``, so the webhook gets each message once.

    :param conn_id: Airflow connection holding the webhook URL. (templated)
    """

    template_fields: Sequence[str] = ("conn_id",)

    def __init__(self, *, conn_id: str, timeout_seconds: float = 10.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout_seconds = timeout_seconds

    @property
    def delivery_key(self) -> str:
        return f"webhook:{self.conn_id}"

    def notify(self, context: Any) -> None:

        message = context.get("mlops_alert")
        if not message:
            raise ValueError("HealthWebhookNotifier needs the message in the context ('mlops_alert')")
        url = webhook_url(BaseHook.get_connection(self.conn_id))
        post_json(url, health_payload(message, context), self.timeout_seconds, self.conn_id)
