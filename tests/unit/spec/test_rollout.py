"""The `rollout` section: off by default, every field checked, errors naming the field."""

from __future__ import annotations

import pytest
import yaml

from airflow_mlops.spec import SpecError, parse_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def _with_rollout(rollout: dict) -> str:
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["rollout"] = rollout
    return yaml.safe_dump(raw)


def test_replay_shadow_and_canary_are_off_by_default():
    spec = parse_spec(EXAMPLE_SPEC.read_text())
    rollout = spec.rollout
    assert not (rollout.replay.enabled or rollout.shadow.enabled or rollout.canary.enabled)
    assert not rollout.replay.judges


def test_a_full_rollout_section_loads():
    spec = parse_spec(_with_rollout({
        "replay": {"enabled": True, "lookback_days": 3, "min_agreement": 0.9, "max_score_psi": 0.2,
                   "max_metric_drop": 0.02, "min_labeled_rows": 10},
        "shadow": {"enabled": True, "share": 0.25, "queue_requests": 64},
        "canary": {"enabled": True, "share": 0.3, "baking_minutes": 5, "poll_seconds": 2, "min_requests": 20,
                   "max_error_rate": 0.05, "max_p99_latency_ratio": 1.5, "max_score_psi": 0.3},
    }))  # fmt: skip
    assert spec.rollout.replay.judges and spec.rollout.shadow.share == 0.25
    assert spec.rollout.canary.baking_minutes == 5


@pytest.mark.parametrize(
    ("rollout", "field"),
    [
        ({"shadow": {"enabled": True, "share": 0}}, "rollout.shadow.share"),
        ({"shadow": {"share": 1.5}}, "rollout.shadow.share"),
        ({"shadow": {"queue_requests": 0}}, "rollout.shadow.queue_requests"),
        ({"canary": {"max_error_rate": 1.0}}, "rollout.canary.max_error_rate"),
        ({"canary": {"max_p99_latency_ratio": 0.9}}, "rollout.canary.max_p99_latency_ratio"),
        ({"canary": {"baking_minutes": 0}}, "rollout.canary.baking_minutes"),
        ({"canary": {"poll_seconds": -1}}, "rollout.canary.poll_seconds"),
        ({"replay": {"enabled": True, "min_agreement": 1.2}}, "rollout.replay.min_agreement"),
        ({"replay": {"lookback_days": 0}}, "rollout.replay.lookback_days"),
        ({"canary": {"bake": 3}}, "rollout.canary.bake"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(rollout, field):
    with pytest.raises(SpecError) as err:
        parse_spec(_with_rollout(rollout), "churn.yaml")
    assert field in str(err.value) and "churn.yaml" in str(err.value)


def test_replay_conditions_need_the_replay_enabled():
    with pytest.raises(SpecError, match="need enabled: true"):
        parse_spec(_with_rollout({"replay": {"min_agreement": 0.9}}))


def test_the_rollout_is_outside_the_spec_fingerprint():
    plain = parse_spec(EXAMPLE_SPEC.read_text())
    rolled = parse_spec(_with_rollout({"shadow": {"enabled": True}, "canary": {"enabled": True}}))
    assert plain.fingerprint() == rolled.fingerprint()
