"""The canary's judgement: which threshold a baking champion crossed, and when it has baked."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.serving.canary import Arm, decide
from airflow_mlops.spec.rollout import CanarySpec

pytestmark = pytest.mark.unit

RULE = CanarySpec(enabled=True, min_requests=20, baking_minutes=1, max_error_rate=0.05, max_p99_latency_ratio=2.0,
                  max_score_psi=0.25)  # fmt: skip


def _arm(version: str, requests: int, latency: float, scores: np.ndarray, errors: int = 0) -> Arm:
    arm = Arm(version)
    for i in range(requests):
        arm.observe(latency, scores[i % len(scores) : i % len(scores) + 10])
    for _ in range(errors):
        arm.failed()
    return arm


def _scores(seed: int, a: float = 2, b: float = 5) -> np.ndarray:
    return np.random.default_rng(seed).beta(a, b, 1_000)


def test_a_champion_like_its_baseline_keeps_baking_then_has_baked():
    baseline = _arm("1", 100, 0.002, _scores(0))
    candidate = _arm("2", 100, 0.0021, _scores(1))
    assert decide(RULE, candidate, baseline, baked_seconds=10).action is None
    verdict = decide(RULE, candidate, baseline, baked_seconds=61)
    assert verdict.action == "baked" and "within every threshold" in verdict.reason


def test_failed_model_runs_above_the_error_rate_roll_back_with_the_figures():
    verdict = decide(RULE, _arm("2", 50, 0.002, _scores(1), errors=10), _arm("1", 100, 0.002, _scores(0)), 5)
    assert verdict.action == "rollback" and "error rate 0.1667" in verdict.reason
    assert verdict.figures["candidate"]["errors"] == 10 and verdict.figures["candidate"]["requests"] == 60


def test_a_slow_champion_rolls_back_on_the_p99_ratio():
    verdict = decide(RULE, _arm("2", 50, 0.010, _scores(1)), _arm("1", 100, 0.002, _scores(0)), 5)
    assert verdict.action == "rollback" and "5.00 x the baseline" in verdict.reason
    assert verdict.figures["p99_latency_ratio"] == pytest.approx(5.0)


def test_constant_scores_roll_back_on_the_score_psi():
    verdict = decide(RULE, _arm("2", 50, 0.002, np.full(1_000, 0.5)), _arm("1", 100, 0.002, _scores(0)), 5)
    assert verdict.action == "rollback" and "score PSI" in verdict.reason and verdict.figures["score_psi"] > 0.25


def test_too_few_requests_are_not_judged_and_bake_at_the_end_of_the_window():
    bad = _arm("2", 5, 0.050, np.full(1_000, 0.5), errors=5)
    baseline = _arm("1", 100, 0.002, _scores(0))
    assert decide(RULE, bad, baseline, 5).action is None
    verdict = decide(RULE, bad, baseline, 61)
    assert verdict.action == "baked" and "too little to judge" in verdict.reason


def test_the_baseline_starts_with_the_figures_it_gathered_as_champion_and_shares_the_traffic():
    from types import SimpleNamespace

    from airflow_mlops.serving.canary import Canary

    canary = Canary(CanarySpec(enabled=True, share=0.5), "spec.yaml", "http://registry")
    old, new = SimpleNamespace(version="1"), SimpleNamespace(version="2")
    for _ in range(30):
        canary.arm(old).observe(0.002, np.ones(3))
    before = canary.current
    canary.stop(new)  # what the swap does first
    canary.start(old, new, "move-1", before)
    assert canary.baseline_arm.requests == 30 and canary.candidate_arm.requests == 0
    routed = [canary.route(new).version for _ in range(400)]
    assert 120 < routed.count("2") < 280 and set(routed) == {"1", "2"}
    assert all(canary.route(new, "deploy-smoke-abc") is new for _ in range(50))  # the deploy step checks the new one
    canary.rolled_back.add("2")
    canary.fallback = old
    assert canary.route(new) is old  # a request that read the rolled-back champion gets the baseline


def test_a_failed_registry_move_is_tried_again_until_done_and_then_the_version_may_bake_anew():
    import asyncio
    from types import SimpleNamespace

    from airflow_mlops.serving.canary import Canary, Verdict
    from airflow_mlops.serving.rollout import Rollout

    canary = Canary(CanarySpec(enabled=True, share=0.5, poll_seconds=1), "spec.yaml", "http://u:secret@registry")
    old, new = SimpleNamespace(version="1", name="m"), SimpleNamespace(version="2", name="m")
    canary.start(old, new, "move-1", None)
    verdict = Verdict("rollback", "error rate 0.5 > 0.05", {"error_rate": 0.5})
    canary.judge = lambda: verdict  # type: ignore[method-assign]
    answers = [False, False, True]  # the registry is down twice, then the move is made
    moves: list[tuple] = []

    def roll_back_alias(*args):
        moves.append(args)
        return answers.pop(0)

    canary.roll_back_alias = roll_back_alias  # type: ignore[method-assign]
    rollout = Rollout(load=lambda version: new, canary=canary)
    app = SimpleNamespace(model=new)

    async def polls():
        first = await rollout.judge(app)
        assert first == "rollback" and app.model is old and rollout.refuses("2")
        assert "airflow_mlops_canary_rollback_pending 1" in rollout.metrics_lines()
        rollout.settled()  # the alias is not back yet: the version stays refused
        assert rollout.refuses("2")
        assert await rollout.judge(app) is None  # too early for the next try
        rollout._pending_next = 0.0
        assert await rollout.judge(app) is None  # second failure: backs off
        rollout._pending_next = 0.0
        assert await rollout.judge(app) == "rollback"  # done
        assert "airflow_mlops_canary_rollback_pending 0" in rollout.metrics_lines()
        rollout.settled()  # the registry's alias is back on v1, which this process serves
        assert not rollout.refuses("2")  # promoted again, v2 would bake anew

    asyncio.run(polls())
    assert len(moves) == 3 and all(m == ("m", "2", "1", "move-1", verdict) for m in moves)
