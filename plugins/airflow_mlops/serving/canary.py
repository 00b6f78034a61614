"""The canary: a new champion bakes against the one it replaced, and is rolled back on its own.

``rollout.canary`` in the spec turns it on. When the ``champion`` alias moves by a promotion (not a
rollback: the promotion history's newest record says which) from the version this process serves
to a new one, the new one bakes for ``baking_minutes``: ``share`` of the requests go to it, the
rest to the previous champion (the baseline), which stays loaded. The baseline's figures are the
ones it gathered before the swap plus those of its share during the bake (the same traffic at the
same time), so ``share: 1.0`` compares against the recorded figures alone.

Figures per side (``Arm``): model runs and the failed ones, the latency of each request's model
run (as the caller waits for it: batching and queueing included), its scores (a classifier's
score, a regressor's value), the newest ``SAMPLES`` of each. A request whose run fails on the new
champion is answered by the baseline: the caller sees no error, the failure counts.

Every ``poll_seconds`` ``decide`` judges them once the new champion has ``min_requests``: an
error rate above ``max_error_rate``, a p99 above ``max_p99_latency_ratio`` times the baseline's,
or a score PSI against the baseline above ``max_score_psi`` rolls back: the process answers with
the baseline at once, and the alias is moved back in the registry by a child process
(``serving.canary_rollback``: the MLflow client stays out of the serving process), recorded in
the promotion history by ``canary`` with the figures. Each worker judges its own traffic; the
rollback is keyed by the version rolled back, so several workers make it once. After
``baking_minutes`` without a crossed threshold the baseline is released.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_mlops.core.operations.score_shift import score_psi

if TYPE_CHECKING:
    from airflow_mlops.serving.model import ServedModel
    from airflow_mlops.spec.rollout import CanarySpec

logger = logging.getLogger("airflow_mlops.serving")

SMOKE_PREFIX = "deploy-smoke-"  # the deploy step's request ids (serving.deploy)
SAMPLES = 5_000  # requests remembered per side (latency, scores)
TRACKING_URI_VARIABLE = "AIRFLOW_MLOPS_CANARY_TRACKING_URI"  # read by serving.canary_rollback
ROLLBACK_TIMEOUT_SECONDS = 300.0


class Arm:
    """The figures of one side of a bake: runs, failures, latencies and scores of its newest requests."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.requests = 0
        self.errors = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self.scores: collections.deque[np.ndarray] = collections.deque(maxlen=SAMPLES)

    def observe(self, seconds: float, values: Any) -> None:
        self.requests += 1
        self.latencies.append(seconds)
        if values is not None and getattr(values, "dtype", None) is not None and values.dtype.kind in "fiub":
            self.scores.append(values)

    def failed(self) -> None:
        self.requests += 1
        self.errors += 1

    def figures(self) -> dict[str, Any]:
        latencies = np.fromiter(self.latencies, dtype=np.float64)
        return {
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else None,
            "p99_ms": float(np.percentile(latencies, 99) * 1000) if latencies.size else None,
        }

    def score_values(self) -> np.ndarray:
        return np.concatenate(list(self.scores)) if self.scores else np.empty(0)


@dataclass
class Verdict:
    """``decide``'s answer: ``action`` is None (keep baking), "rollback" or "baked"; ``reason`` names the figures."""

    action: str | None
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def decide(rule: CanarySpec, candidate: Arm, baseline: Arm, baked_seconds: float) -> Verdict:
    """Judge the new champion's figures against the baseline's (pure; the thresholds of ``rollout.canary``)."""
    mine, theirs = candidate.figures(), baseline.figures()
    psi = score_psi(baseline.score_values(), candidate.score_values())
    ratio = mine["p99_ms"] / theirs["p99_ms"] if mine["p99_ms"] and theirs["p99_ms"] else None
    figures = {"candidate": mine, "baseline": theirs, "score_psi": psi, "p99_latency_ratio": ratio,
               "baked_seconds": round(baked_seconds, 1)}  # fmt: skip
    if candidate.requests < rule.min_requests:
        if baked_seconds >= rule.baking_minutes * 60:
            few = f"{candidate.requests} request(s), fewer than min_requests {rule.min_requests}"
            return Verdict("baked", f"baked {rule.baking_minutes:g} min with {few}: too little to judge", figures)
        return Verdict(None, f"{candidate.requests} of {rule.min_requests} requests to judge", figures)
    crossed = []
    if mine["error_rate"] is not None and mine["error_rate"] > rule.max_error_rate:
        crossed.append(f"error rate {mine['error_rate']:.4f} ({mine['errors']} of {mine['requests']} model runs "
                       f"failed) > max_error_rate {rule.max_error_rate:g}")  # fmt: skip
    if ratio is not None and ratio > rule.max_p99_latency_ratio:
        crossed.append(f"p99 latency {mine['p99_ms']:.2f} ms = {ratio:.2f} x the baseline's {theirs['p99_ms']:.2f} "
                       f"ms > max_p99_latency_ratio {rule.max_p99_latency_ratio:g}")  # fmt: skip
    if psi is not None and psi > rule.max_score_psi:
        crossed.append(f"score PSI {psi:.4f} against v{baseline.version} > max_score_psi {rule.max_score_psi:g}")
    if crossed:
        return Verdict("rollback", f"canary v{candidate.version}: " + "; ".join(crossed), figures)
    if baked_seconds >= rule.baking_minutes * 60:
        return Verdict("baked", f"v{candidate.version} baked {rule.baking_minutes:g} min within every threshold",
                       figures)  # fmt: skip
    return Verdict(None, "within every threshold so far", figures)


class Canary:
    """The bake of one process: which model answers a request, the figures, the judgement."""

    def __init__(self, rule: CanarySpec, spec_path: str, tracking_uri: str) -> None:
        self.rule = rule
        self.spec_path = spec_path
        self.tracking_uri = tracking_uri
        self.current: Arm | None = None  # the champion's figures while nothing bakes: the next bake's baseline
        self.baseline: ServedModel | None = None
        self.candidate: ServedModel | None = None
        self.candidate_arm: Arm | None = None
        self.baseline_arm: Arm | None = None
        self.started = 0.0
        self.move = ""
        self.rolled_back: set[str] = set()  # versions this process refuses to serve again (alias on its way back)
        self.fallback: ServedModel | None = (
            None  # what answers a request that took a rolled-back model before the switch
        )
        self.rollbacks = 0
        self.bakes = 0
        self.last_verdict: Verdict | None = None
        self._random = random.Random()

    @property
    def baking(self) -> bool:
        return self.candidate is not None

    def start(self, baseline: ServedModel, candidate: ServedModel, move: str = "", before: Arm | None = None) -> None:
        """Bake ``candidate`` against ``baseline`` (the champion it replaced), from now; ``move`` is the id of
        the promotion record that made it champion (its rollback is keyed by it); ``before`` the figures the
        baseline gathered while it was champion (default: ``current``)."""
        self.baseline, self.candidate, self.move = baseline, candidate, move
        before = before or self.current
        arm = before if before is not None and before.version == baseline.version else None
        self.baseline_arm = arm or Arm(baseline.version)
        self.candidate_arm = Arm(candidate.version)
        self.started = time.monotonic()
        self.bakes += 1
        logger.info("canary: v%s bakes for %g min on %g of requests against v%s", candidate.version,
                    self.rule.baking_minutes, self.rule.share, baseline.version)  # fmt: skip

    def stop(self, keep: ServedModel | None) -> None:
        """End the bake; ``keep`` (the model serving on) gathers the figures from now on."""
        self.baseline = self.candidate = None
        self.candidate_arm = self.baseline_arm = None
        self.current = Arm(keep.version) if keep is not None else None

    def route(self, champion: ServedModel, client_id: str | None = None) -> ServedModel:
        """The model that answers this request: while ``champion`` bakes, the baseline for ``1 - share``.

        The deploy step's smoke requests (``X-Request-ID: deploy-smoke-...``, ``serving.deploy``) always
        reach the champion: they check that it answers.
        """
        if self.fallback is not None and champion.version in self.rolled_back:
            return self.fallback  # the request read the champion just before the rollback switched it
        if client_id is not None and client_id.startswith(SMOKE_PREFIX):
            return champion
        if self.candidate is champion and self.baseline is not None and self._random.random() >= self.rule.share:
            return self.baseline
        return champion

    def arm(self, model: ServedModel) -> Arm | None:
        if self.candidate is not None:
            if model is self.candidate:
                return self.candidate_arm
            if model is self.baseline:
                return self.baseline_arm
            return None
        if self.current is None or self.current.version != model.version:
            self.current = Arm(model.version)
        return self.current

    def judge(self) -> Verdict | None:
        if self.candidate_arm is None or self.baseline_arm is None:
            return None
        self.last_verdict = decide(self.rule, self.candidate_arm, self.baseline_arm, time.monotonic() - self.started)
        return self.last_verdict

    def roll_back_alias(self, name: str, bad: str, to: str, move: str, verdict: Verdict) -> bool:
        """Move the alias back in the registry (a child process: ``serving.canary_rollback``); True when done.

        ``move`` is the id of the promotion that made ``bad`` champion: the rollback's key, with the version.
        """
        command = [sys.executable, "-m", "airflow_mlops.serving.canary_rollback", self.spec_path,
                   bad, to, move, verdict.reason, json.dumps(verdict.figures, default=str)]  # fmt: skip
        # The tracking URI may hold a password: in the child's environment, never in its argv (ps shows argv).
        env = {**os.environ, TRACKING_URI_VARIABLE: self.tracking_uri}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=ROLLBACK_TIMEOUT_SECONDS, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.error("canary: the rollback of %s v%s -> v%s did not run: %s", name, bad, to, exc)
            return False
        if done.returncode != 0:
            logger.error("canary: the rollback of %s v%s -> v%s failed: %s", name, bad, to,
                         (done.stderr or done.stdout).strip()[-2000:])  # fmt: skip
            return False
        logger.warning("canary: %s", done.stdout.strip())
        return True
