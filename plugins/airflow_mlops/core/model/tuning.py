"""Candidates and hyperparameter searches expanded into trials, and the choice of the best one.

A trial is a small JSON dict (estimator, params, a label): the training DAG maps one task
over each, so trials spread across workers, and each is logged as an MLflow child run of
the training run. The winner is chosen by the spec's selection metric on the validation
split; ties go to the earlier trial, so the choice is deterministic.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from airflow_mlops.core.contracts import CandidateTrial, TrialResult
from airflow_mlops.spec import LOWER_IS_BETTER, CandidateSpec, PipelineSpec


def _label(name: str, params: dict[str, Any]) -> str:
    if not params:
        return name
    shown = ",".join(f"{key}={_short(value)}" for key, value in sorted(params.items()))
    return f"{name}[{shown}]"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _draw(rng: np.random.Generator, value: Any) -> Any:
    if isinstance(value, list):
        return value[int(rng.integers(len(value)))]
    ((kind, (low, high)),) = value.items()
    if kind == "uniform":
        return float(rng.uniform(low, high))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return int(rng.integers(int(low), int(high)))


def _combinations(candidate: CandidateSpec, seed: int) -> list[dict[str, Any]]:
    search = candidate.search
    if search is None or not search.space:
        return [{}]
    names = sorted(search.space)
    if search.method == "grid":
        grids = [search.space[name] for name in names]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*grids)]  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    return [{name: _draw(rng, search.space[name]) for name in names} for _ in range(search.n_iter)]


def expand_trials(spec: PipelineSpec) -> list[CandidateTrial]:
    """Every trial of the spec's candidates, in a stable order (random draws are seeded)."""
    trials: list[CandidateTrial] = []
    for number, candidate in enumerate(spec.model.candidate_list()):
        name = candidate.name or candidate.estimator
        for searched in _combinations(candidate, spec.model.seed + number):
            params = {**candidate.params, **searched}
            trials.append(
                {
                    "trial": len(trials),
                    "candidate": name,
                    "estimator": candidate.estimator,
                    "params": params,
                    "searched": sorted(searched),
                    "label": _label(name, searched) if len(spec.model.candidate_list()) > 1 or searched else name,
                }
            )
    _unique_labels(trials)
    if len(trials) > spec.model.max_trials:  # the spec check counts the same; kept for specs built in code
        raise ValueError(f"{len(trials)} trials exceed model.max_trials ({spec.model.max_trials})")
    return trials


MAX_LABEL = 200  # Airflow keeps a mapped task's rendered index in 250 characters


def _unique_labels(trials: list[CandidateTrial]) -> None:
    """Labels name trials in MLflow and the Airflow UI: short enough, and never the same twice."""
    seen: dict[str, int] = {}
    for trial in trials:
        label = trial["label"][:MAX_LABEL]
        count = seen.get(label, 0)
        seen[label] = count + 1
        trial["label"] = label if count == 0 else f"{label}#{count + 1}"


def select_best(results: list[TrialResult], metric: str) -> TrialResult:
    """The trial result with the best ``metric`` (``results[i]['metrics'][metric]``)."""
    scored = [r for r in results if isinstance(r.get("metrics", {}).get(metric), int | float)]
    scored = [r for r in scored if math.isfinite(r["metrics"][metric])]
    if not scored:
        raise ValueError(f"no trial produced a finite '{metric}' on the validation split: {results}")
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return min(scored, key=lambda r: (sign * r["metrics"][metric], r["trial"]))
