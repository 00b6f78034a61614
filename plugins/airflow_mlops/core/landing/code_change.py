"""When a change of what is trained calls for one training run (light: the triggerer runs it).

The deployed spec's training fingerprint (``PipelineSpec.training_fingerprint``, with
``model.code_version`` inside it) is compared with the champion's ``training_fingerprint`` tag.
One event per distinct (fingerprint, champion version), and none when:

- there is no champion, or it carries no such tag (registered before the tag existed): nothing
  to compare, the first training comes from data;
- the champion already carries the fingerprint (the change was trained and promoted);
- any version of the model carries it (the change was trained and the gate kept the champion, or
  a person rolled back from it: retraining would only repeat that);
- this watcher already fired for this (fingerprint, champion): the run it started is queued or
  running, or ended without a version (a failure: retrigger by hand). The fired keys are kept in
  Airflow's asset state store, so a triggerer restart does not fire again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypedDict

FINGERPRINT_TAG = "training_fingerprint"
FIRED_KEY = "fired"  # the asset state store's key: a list of FiredChange, newest last
MAX_FIRED = 20


class FiredChange(TypedDict):
    fingerprint: str
    champion_version: str
    at: str


class CodeChangeEvent(TypedDict):
    """The Asset event's payload (``mlops.<pipeline>.code_change``)."""

    change: str
    fingerprint: str
    champion_version: str
    champion_fingerprint: str
    reason: str


@dataclass(frozen=True)
class Decision:
    event: CodeChangeEvent | None
    why: str  # said in the triggerer's log when it changes


def decide(
    fingerprint: str,
    champion_version: str | None,
    champion_fingerprint: str | None,
    trained_elsewhere: bool,
    fired: list[FiredChange],
) -> Decision:
    """Whether to fire for ``fingerprint`` now; ``trained_elsewhere``: a version carries it."""
    if champion_version is None:
        return Decision(None, "no champion yet: nothing to compare")
    if not champion_fingerprint:
        return Decision(None, f"champion v{champion_version} has no {FINGERPRINT_TAG} tag: nothing to compare")
    if champion_fingerprint == fingerprint:
        return Decision(None, f"champion v{champion_version} was trained with this spec ({fingerprint})")
    if trained_elsewhere:
        return Decision(
            None, f"a version was already trained with {fingerprint} (not the champion v{champion_version})"
        )
    if any(f["fingerprint"] == fingerprint and f["champion_version"] == champion_version for f in fired):
        return Decision(None, f"already fired for {fingerprint} over champion v{champion_version}")
    reason = (
        f"training spec changed: fingerprint {champion_fingerprint} -> {fingerprint} "
        f"(champion v{champion_version} was trained with the former)"
    )
    event = CodeChangeEvent(
        change="training_fingerprint",
        fingerprint=fingerprint,
        champion_version=champion_version,
        champion_fingerprint=champion_fingerprint,
        reason=reason,
    )
    return Decision(event, reason)


def remember(fired: list[FiredChange], event: CodeChangeEvent, now: dt.datetime | None = None) -> list[FiredChange]:
    """``fired`` with ``event``'s key added last (the oldest dropped beyond ``MAX_FIRED``)."""
    at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    entry = FiredChange(fingerprint=event["fingerprint"], champion_version=event["champion_version"], at=at)
    return [*fired, entry][-MAX_FIRED:]


def fired_list(stored: Any) -> list[FiredChange]:
    """The stored value read back; anything else (a hand edit, an older shape) counts as empty."""
    if not isinstance(stored, list):
        return []
    return [
        FiredChange(fingerprint=str(f["fingerprint"]), champion_version=str(f["champion_version"]), at=str(f.get("at")))
        for f in stored
        if isinstance(f, dict) and "fingerprint" in f and "champion_version" in f
    ]
