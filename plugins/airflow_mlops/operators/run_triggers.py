"""What asked for a training run besides data: retrain messages and code changes, read from the run's
triggering Asset events (``mlops.<pipeline>.message`` and ``mlops.<pipeline>.code_change``).

Every message is checked again here (``core.landing.messages``): Airflow's pub/sub trigger checks
nothing, and anyone allowed to post Asset events through the REST API can write one. A malformed
one is logged and left out; a run that nothing but malformed messages triggered skips
(``skip_if_only_malformed``, called by the ingest task). A code-change event always trains (its
version must carry the new fingerprint, so the "already trained on this data" skip does not apply).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

MESSAGE, CODE_CHANGE = ".message", ".code_change"  # the ends of the Asset names (factories.assets)


@dataclass
class RunRequests:
    """The requests of one run: the first reason given, whether any forces training, tags to record."""

    reason: str | None = None
    force_retrain: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # what was wrong with each malformed message
    other_events: int = 0  # events of other Assets (data arrival, drift)

    @property
    def only_malformed(self) -> bool:
        return bool(self.dropped) and not self.tags and not self.other_events


def _events(context: Context) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for asset, events in (context.get("triggering_asset_events") or {}).items():
        name = str(getattr(asset, "name", asset))
        found.extend((name, (getattr(event, "extra", None) or {}).get("payload")) for event in events)
    return found


def run_requests(context: Context) -> RunRequests:
    """The messages and code changes among the run's triggering Asset events, checked."""
    from airflow_mlops.core.landing.messages import MessageError, message_of_event

    requests = RunRequests()
    for name, payload in _events(context):
        if name.endswith(MESSAGE):
            try:
                message = message_of_event(payload)
            except MessageError as exc:
                log.warning("left out a malformed retrain message of %s: %s", name, exc)
                requests.dropped.append(str(exc))
                continue
            requests.tags["trigger"] = "message"
            requests.reason = requests.reason or message.get("reason")
            requests.force_retrain = requests.force_retrain or bool(message.get("force_retrain"))
            for key, tag in (("id", "message_id"), ("requested_by", "message_by")):
                if message.get(key):
                    requests.tags[tag] = str(message[key])  # type: ignore[literal-required]
        elif name.endswith(CODE_CHANGE) and isinstance(payload, dict):
            requests.tags["trigger"] = "code_change"
            requests.force_retrain = True
            reason = payload.get("reason")
            requests.reason = requests.reason or (str(reason)[:500] if isinstance(reason, str) else None)
            requests.tags["code_change"] = f"{payload.get('champion_fingerprint')} -> {payload.get('fingerprint')}"[
                :250
            ]
        else:
            requests.other_events += 1
    return requests


def skip_if_only_malformed(context: Context) -> None:
    """Skip the run when it was triggered by malformed messages and nothing else."""
    requests = run_requests(context)
    if requests.only_malformed:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(
            f"every message that triggered this run was malformed, none used: {'; '.join(requests.dropped)[:500]}"
        )
