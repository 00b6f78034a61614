"""What a run's message and code-change events ask for: reason, force_retrain, tags; malformed ones left out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.operators.model import force_retrain
from airflow_mlops.operators.run_triggers import run_requests, skip_if_only_malformed

pytestmark = pytest.mark.unit


class Key:
    """An Asset key as ``triggering_asset_events`` has them (hashable, with a name)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.name == self.name


def _context(*events: tuple[str, object]) -> dict:
    by_asset: dict = {}
    for name, payload in events:
        by_asset.setdefault(Key(name), []).append(
            SimpleNamespace(extra={"from_trigger": True, "payload": payload}))  # fmt: skip
    return {"triggering_asset_events": by_asset, "params": {}}


def test_a_message_gives_its_reason_force_retrain_and_tags():
    context = _context(("mlops.churn.message", {"queue": "redis+list://k",
                        "message": {"reason": "new labels", "force_retrain": True, "id": "m1"}}))  # fmt: skip
    requests = run_requests(context)
    assert requests.reason == "new labels" and requests.force_retrain
    assert requests.tags == {"trigger": "message", "message_id": "m1"}
    assert force_retrain(context)  # type: ignore[arg-type]


def test_a_pubsub_message_is_checked_in_the_run_and_a_malformed_one_skips_a_run_it_alone_triggered():
    good = _context(("mlops.churn.message", {"type": "message", "channel": "c", "data": '{"reason": "crm"}'}))
    assert run_requests(good).reason == "crm" and not run_requests(good).force_retrain
    bad = _context(("mlops.churn.message", {"type": "message", "channel": "c", "data": "retrain!"}))
    with pytest.raises(AirflowSkipException, match="malformed"):
        skip_if_only_malformed(bad)  # type: ignore[arg-type]
    # With data arrival beside it, the run goes on (the message is only left out).
    mixed = _context(("mlops.churn.message", {"data": "x", "type": "message"}), ("mlops.churn.landing.training", {}))
    skip_if_only_malformed(mixed)  # type: ignore[arg-type]
    assert run_requests(mixed).dropped and run_requests(mixed).reason is None


def test_a_code_change_always_trains_and_says_why():
    payload = {"change": "training_fingerprint", "fingerprint": "new", "champion_fingerprint": "old",
               "champion_version": "1", "reason": "training spec changed: fingerprint old -> new"}  # fmt: skip
    context = _context(("mlops.churn.code_change", payload))
    requests = run_requests(context)
    assert requests.force_retrain and requests.reason.startswith("training spec changed")
    assert requests.tags == {"trigger": "code_change", "code_change": "old -> new"}
    assert force_retrain(context)  # type: ignore[arg-type]
    assert not force_retrain(_context(("mlops.churn.drift", {"drift": 1})))  # type: ignore[arg-type]
