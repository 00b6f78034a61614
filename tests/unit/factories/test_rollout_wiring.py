"""The training DAG with `rollout.replay` / `rollout.shadow`: a replay task between the gate and promote."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import EXAMPLE_SPEC
from tests.unit.factories.test_wiring import TRAINING_WIRING, _wiring

pytestmark = pytest.mark.unit


def _dag(tmp_path, rollout, approval=False):
    from airflow_mlops.factories.training import build_training_dag

    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["rollout"] = rollout
    if approval:
        raw["promotion"]["require_approval"] = True
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return build_training_dag(path)


@pytest.mark.parametrize("rollout", [{"replay": {"enabled": True}}, {"shadow": {"enabled": True}}])
def test_the_replay_task_takes_the_gate_and_promote_takes_the_replay(tmp_path, mlops_home, rollout):
    dag = _dag(tmp_path, rollout)
    replay, promote = dag.get_task("model.replay"), dag.get_task("model.promote")
    assert type(replay).__name__ == "ReplayCandidateOperator"
    assert replay.upstream_task_ids == {"model.gate"} and "model.replay" in promote.upstream_task_ids
    assert "model.gate" not in promote.upstream_task_ids
    assert _wiring(dag) == {**TRAINING_WIRING, ("model.replay", "gate"): "model.gate",
                            ("model.promote", "gate"): "model.replay"}  # fmt: skip


def test_with_approval_the_approver_sees_the_replayed_verdict(tmp_path, mlops_home):
    dag = _dag(tmp_path, {"replay": {"enabled": True, "min_agreement": 0.9}}, approval=True)
    assert dag.get_task("model.approve").upstream_task_ids == {"model.replay"}
    assert _wiring(dag)[("model.approve", "gate")] == "model.replay"


def test_without_a_rollout_there_is_no_replay_task(tmp_path, mlops_home):
    dag = _dag(tmp_path, {"canary": {"enabled": True}})  # the canary lives in the serving app
    assert "model.replay" not in dag.task_ids
