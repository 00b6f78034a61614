"""Health incidents of the monitoring DAG: one per condition while it holds, their messages in an outbox.

An incident opens when its condition starts (one ``alert`` message), stays open without a word
while the condition holds, and closes when it clears (one ``recovered`` message). The state is
one JSON document per pipeline (``layout.incidents_uri``)::

    {"open": {"silence": Incident, ...}, "closed": [Incident, ...], "outbox": [AlertMessage, ...]}

Messages wait in the outbox until every notifier took them (``deliver``): the decision (open,
close, the message) is written first, the sending comes after, and each notifier that accepted a
message is marked at once. A retried or re-run task therefore finds an incident already open
(no second alert) and the messages some notifier has not taken yet, and sends only those. The
one repeat left is a notifier that accepted a message just before the task died, ahead of its
mark: every message carries its ``id`` (``<incident id>:alert``) for a receiver to drop it.

Why a file under the artifact root and not MLflow tags: the monitoring DAG's deadline callback
runs in the triggerer, where only the light store (``core.io.storage``, no MLflow client) is
at hand; the plugin's pages read it without MLflow; a registered-model tag holds 5,000
characters on SQL backends; and every other piece of pipeline state lives in the artifact root.
Writes are atomic (a rename, one PUT). Two writers at the same moment (the deadline callback
while a late run's health check runs) may lose one's change; the next run decides again from
what it observes, so a lost "open" comes back and a lost "close" is made again.

Pure functions over the state plus ``load``/``save``; no Airflow, no MLflow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

from airflow_mlops import layout
from airflow_mlops.core.contracts import AlertMessage, Incident
from airflow_mlops.core.io import storage

CLOSED_KEPT = 20  # closed incidents kept for the pages (newest)
OUTBOX_MAX = 50  # messages a notifier that never answers can pile up (the oldest are dropped)

State = dict[str, Any]


def empty() -> State:
    return {"open": {}, "closed": [], "outbox": []}


def load(pipeline: str) -> State:
    """The pipeline's incident state (empty when none was written yet)."""
    uri = layout.incidents_uri(pipeline)
    if not storage.exists(uri):
        return empty()
    state = storage.read_json(uri)
    return {**empty(), **(state if isinstance(state, dict) else {})}


def save(pipeline: str, state: State) -> None:
    storage.write_json(state, layout.incidents_uri(pipeline))


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


def _message(kind: str, pipeline: str, incident: Incident, now: dt.datetime) -> AlertMessage:
    copy = cast(Incident, dict(incident))
    return {"id": f"{incident['id']}:{kind}", "kind": kind, "pipeline": pipeline, "incident": copy,
            "at": _iso(now), "sent_to": []}  # fmt: skip


def _queue(state: State, message: AlertMessage) -> None:
    if any(m["id"] == message["id"] for m in state["outbox"]):
        return
    state["outbox"] = [*state["outbox"], message][-OUTBOX_MAX:]


def open_incident(
    state: State, check: str, summary: str, since: str | None, pipeline: str, now: dt.datetime, by: str
) -> bool:
    """Open ``check``'s incident and queue its alert; False (and nothing changes) when it is open already."""
    if check in state["open"]:
        return False
    incident: Incident = {"id": f"{check}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%S}", "check": check,
                          "summary": summary, "since": since, "opened_at": _iso(now), "opened_by": by}  # fmt: skip
    state["open"] = {**state["open"], check: incident}
    _queue(state, _message("alert", pipeline, incident, now))
    return True


def close_incident(
    state: State, check: str, pipeline: str, now: dt.datetime, by: str, summary: str | None = None
) -> bool:
    """Close ``check``'s incident and queue its recovery; False when none is open."""
    incident = state["open"].get(check)
    if incident is None:
        return False
    closed = cast(Incident, {**incident, "closed_at": _iso(now), "closed_by": by})
    if summary:
        closed["summary"] = f"{incident['summary']}; now: {summary}"
    state["open"] = {k: v for k, v in state["open"].items() if k != check}
    state["closed"] = [*state["closed"], closed][-CLOSED_KEPT:]
    _queue(state, _message("recovered", pipeline, closed, now))
    return True


def reconcile(
    state: State,
    findings: Mapping[str, Mapping[str, Any]],
    enabled: Collection[str],
    pipeline: str,
    now: dt.datetime,
    by: str,
) -> tuple[list[str], list[str]]:
    """Open the incidents whose condition is breached, close those whose condition cleared; return
    (opened, cleared) check names. A finding is ``{"breached": bool, "summary": str, "since": iso}``.

    An open incident of a check that is no longer ``enabled`` (its spec field set back to None)
    closes too. A check without a finding this time (it could not be judged) is left as it is.
    """
    opened, cleared = [], []
    for check, finding in findings.items():
        if finding.get("breached"):
            if open_incident(state, check, str(finding["summary"]), finding.get("since"), pipeline, now, by):
                opened.append(check)
        elif close_incident(state, check, pipeline, now, by, str(finding.get("summary") or "")):
            cleared.append(check)
    for check in list(state["open"]):
        if check not in enabled and close_incident(state, check, pipeline, now, by, "the check is turned off"):
            cleared.append(check)
    return opened, cleared


def pending(state: State) -> list[AlertMessage]:
    return list(state["outbox"])


def deliver(
    pipeline: str,
    notifiers: list[str],
    send: Callable[[str, AlertMessage], None],
    only: Collection[str] | None = None,
    settle: bool = True,
) -> tuple[list[str], list[str]]:
    """Send every message of the outbox to every notifier that has not taken it; return
    (message ids fully delivered, message ids left for a retry).

    ``notifiers`` are keys that name a destination (``webhook:<conn id>``), so the same webhook
    reached from the task and from the deadline callback takes a message once. ``send(key,
    message)`` raises when the notifier refused; that notifier is tried again on the next
    delivery, the others are not. Each acceptance is written at once, so a crash between two
    sends repeats neither. ``settle``: drop the messages every one of ``notifiers`` took (the
    deadline callback, which knows only its webhook, leaves them for the health check). With no
    notifier the outbox is simply emptied (the incidents stay for the pages). ``only``: these
    message ids, not the whole outbox.
    """
    state = load(pipeline)
    errors: list[BaseException] = []
    for message in pending(state):
        if only is not None and message["id"] not in only:
            continue
        for key in notifiers:
            if key in message["sent_to"]:
                continue
            try:
                send(key, message)
            except Exception as exc:  # the others still get it; this one again on the retry
                errors.append(exc)
                continue
            message["sent_to"] = [*message["sent_to"], key]
            save(pipeline, state)
    done = [m["id"] for m in state["outbox"] if all(k in m["sent_to"] for k in notifiers)
            and (only is None or m["id"] in only)]  # fmt: skip
    if settle:
        state["outbox"] = [m for m in state["outbox"] if m["id"] not in done]
        save(pipeline, state)
    left = [m["id"] for m in state["outbox"] if m["id"] not in done and (only is None or m["id"] in only)]
    if errors:
        raise DeliveryError(done, left, errors)
    return done, left


class DeliveryError(RuntimeError):
    """Some notifier refused a message: it stays in the outbox for the retry."""

    def __init__(self, delivered: list[str], left: list[str], errors: list[BaseException]) -> None:
        first = errors[0]
        super().__init__(
            f"{len(errors)} notification(s) failed, {len(left)} message(s) kept for the retry "
            f"({', '.join(left)}): {type(first).__name__}: {first}"
        )
        self.delivered, self.left, self.errors = delivered, left, errors
