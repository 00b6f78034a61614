"""Drift sensitivity side by side: the smallest shift each rule flags, and its false alarms.

Three rules on the same tables, in one run:
- ``old``: our default before issue 15 (KS D / Cramér's V > 0.1 or PSI > 0.2, Bonferroni-significant):
  ``detect_drift`` with the Wasserstein and Jensen-Shannon thresholds at infinity;
- ``new``: our default today (``detect_drift`` as the spec's defaults configure it);
- ``evidently``: Evidently 0.7.23's ``DataDriftPreset()`` defaults (more than 1,000 rows: normed
  Wasserstein >= 0.1 for numeric columns, Jensen-Shannon >= 0.1 for categorical ones), run in its
  own virtualenv (it pins pandas < 3) by one long-lived subprocess that reads the same Parquet files.

A table is 20 columns as in benchmarks/drift.py: 15 numeric N(100 + i, 10) and 5 categorical
with shares 0.4 / 0.3 / 0.2 / 0.1 over a, b, c, d; reference and current have the same number
of rows. A shifted current table moves every numeric column's mean by ``shift`` standard
deviations and moves a share ``moved`` of the rows from category a to category d (the same
underlying noise for every shift of a seed, so a larger shift is the same table moved further).

Sensitivity: per rule, n and seed, a bisection over the grids (mean shift 0.01..0.50 sd, moved
share 0.005..0.25) for the smallest grid value at which the rule flags every shifted column of
the kind (all of 15 numeric / 5 categorical; at ``--evidently-subset-rows`` and above the
columns Evidently is given, ``EVIDENTLY_SUBSET``, for every rule). False alarms: unshifted
tables (reference and current drawn independently) over ``--false-alarm-seeds`` seeds.

    python3 -m venv /tmp/evidently && /tmp/evidently/bin/pip install evidently==0.7.23 pandas==2.3.3 pyarrow
    .venv/bin/python benchmarks/drift_sensitivity.py --evidently-python /tmp/evidently/bin/python
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
EVIDENTLY_SUBSET = [*NUMERIC[:4], *CATEGORICAL[:2]]
SHARES = (0.4, 0.3, 0.2, 0.1)
SHIFTS = [round(0.01 * i, 3) for i in range(1, 51)]  # mean shift, in standard deviations
MOVES = [round(0.005 * i, 4) for i in range(1, 51)]  # share moved from category a to d
RULES = ("old", "new", "evidently")

EVIDENTLY_WORKER = """
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
for line in sys.stdin:
    job = json.loads(line)
    reference = pd.read_parquet(job["reference"], columns=job["columns"])
    current = pd.read_parquet(job["current"], columns=job["columns"])
    start = time.perf_counter()
    metrics = Report([DataDriftPreset()]).run(current, reference).dict()["metrics"]
    flagged, values = [], {}
    for metric in metrics:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        is_p_value = "p_value" in str(config.get("method", ""))  # tests flag below, distances at or above
        values[config["column"]] = [config.get("method"), value]
        if (value < threshold) if is_p_value else (value >= threshold):
            flagged.append(config["column"])
    seconds = time.perf_counter() - start
    print("@@" + json.dumps({"flagged": flagged, "values": values, "seconds": seconds}), flush=True)
"""


class Evidently:
    """One Python of the Evidently virtualenv, fed one job (two Parquet paths) per line."""

    def __init__(self, python: str) -> None:
        self.process = subprocess.Popen(
            [python, "-c", EVIDENTLY_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.seconds = 0.0
        self.runs = 0
        self.values: dict[str, list[Any]] = {}  # the last run's column -> [method, value]

    def flagged(self, reference: Path, current: Path, columns: list[str]) -> set[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        job = {"reference": str(reference), "current": str(current), "columns": columns}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("@@"):
                answer = json.loads(line[2:])
                self.seconds += answer["seconds"]
                self.runs += 1
                self.values = answer["values"]
                return set(answer["flagged"])
        raise RuntimeError("the Evidently worker ended without an answer")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def tables(rows: int, seed: int) -> tuple[Any, Any]:
    """(reference table, a function (shift, moved) -> current table) of one seed."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    letters = np.array(["a", "b", "c", "d"])

    def categories(u: np.ndarray, moved: float) -> np.ndarray:
        shares = np.array([SHARES[0] - moved, SHARES[1], SHARES[2], SHARES[3] + moved])
        return letters[np.searchsorted(np.cumsum(shares)[:-1], u, side="right")]

    reference = pd.DataFrame(
        {
            **{name: rng.normal(100.0 + i, 10.0, rows) for i, name in enumerate(NUMERIC)},
            **{name: categories(rng.random(rows), 0.0) for name in CATEGORICAL},
        }
    )
    noise = {name: rng.normal(0.0, 1.0, rows) for name in NUMERIC}
    uniforms = {name: rng.random(rows) for name in CATEGORICAL}

    def current(shift: float, moved: float) -> Any:
        return pd.DataFrame(
            {
                **{name: 100.0 + i + 10.0 * (noise[name] + shift) for i, name in enumerate(NUMERIC)},
                **{name: categories(uniforms[name], moved) for name in CATEGORICAL},
            }
        )

    return reference, current


def ours(reference: Any, current: Any, largest: dict[str, float] | None = None) -> dict[str, set[str]]:
    """The columns each of our two defaults flags on one pair of tables; ``largest`` collects the
    largest value of each effect size seen (the margin below the thresholds on unshifted data)."""
    from airflow_mlops.core.operations.drift.detect import detect_drift

    old = detect_drift(
        reference, current, NUMERIC, CATEGORICAL, wasserstein_threshold=math.inf, jensen_shannon_threshold=math.inf
    )
    new = detect_drift(reference, current, NUMERIC, CATEGORICAL)
    if largest is not None:
        for feature in new.features:
            values = {**feature.shifts, feature.test: feature.effect or 0.0}
            for name, value in values.items():
                largest[name] = max(largest.get(name, 0.0), value)
    return {"old": set(old.drifted_features), "new": set(new.drifted_features)}


class Judge:
    """Every rule's flagged columns on (reference, current(shift, moved)), memoised per point."""

    def __init__(self, folder: Path, rows: int, seed: int, evidently: Evidently | None, subset: bool) -> None:
        self.folder, self.rows, self.seed, self.evidently = folder, rows, seed, evidently
        self.reference, self.current = tables(rows, seed)
        self.columns = EVIDENTLY_SUBSET if subset else [*NUMERIC, *CATEGORICAL]
        self.reference_path = folder / f"reference-{rows}-{seed}.parquet"
        if evidently is not None:
            self.reference.to_parquet(self.reference_path, index=False)
        self.memo: dict[tuple[str, float, float], set[str]] = {}

    def flagged(self, rule: str, shift: float, moved: float) -> set[str]:
        key = (rule, shift, moved)
        if key not in self.memo:
            current = self.current(shift, moved)
            if rule == "evidently":
                assert self.evidently is not None
                path = self.folder / f"current-{self.rows}-{self.seed}.parquet"
                current.to_parquet(path, index=False)
                self.memo[key] = self.evidently.flagged(self.reference_path, path, self.columns)
            else:
                for name, found in ours(self.reference, current).items():
                    self.memo[(name, shift, moved)] = found
        return self.memo[key]

    def smallest(self, rule: str) -> dict[str, float | None]:
        """Bisection, both kinds in lockstep: the smallest grid shift flagging every column of the kind."""
        numeric = [c for c in self.columns if c in NUMERIC]
        categorical = [c for c in self.columns if c in CATEGORICAL]
        bounds = {"shift": [0, len(SHIFTS) - 1], "moved": [0, len(MOVES) - 1]}
        top = self.flagged(rule, SHIFTS[-1], MOVES[-1])
        found = {"shift": set(numeric) <= top, "moved": set(categorical) <= top}
        while any(lo < hi for lo, hi in bounds.values()):
            mid = {kind: (lo + hi) // 2 for kind, (lo, hi) in bounds.items()}
            flags = self.flagged(rule, SHIFTS[mid["shift"]], MOVES[mid["moved"]])
            for kind, columns in (("shift", numeric), ("moved", categorical)):
                lo, hi = bounds[kind]
                if lo < hi:
                    bounds[kind] = [lo, mid[kind]] if set(columns) <= flags else [mid[kind] + 1, hi]
        return {
            "shift": SHIFTS[bounds["shift"][0]] if found["shift"] else None,
            "moved": MOVES[bounds["moved"][0]] if found["moved"] else None,
        }


def sensitivity(folder: Path, rows: int, seeds: int, evidently: Evidently | None, subset: bool) -> dict[str, Any]:
    per_seed: dict[str, list[dict[str, float | None]]] = {rule: [] for rule in RULES}
    for seed in range(seeds):
        judge = Judge(folder, rows, seed, evidently, subset)
        for rule in RULES:
            if rule == "evidently" and evidently is None:
                continue
            per_seed[rule].append(judge.smallest(rule))
    return {
        "rows": rows,
        "seeds": seeds,
        "columns": judge.columns,
        "per_seed": per_seed,
        "worst": {
            rule: {
                kind: (None if any(r[kind] is None for r in results) else max(r[kind] for r in results))  # type: ignore[type-var]
                for kind in ("shift", "moved")
            }
            for rule, results in per_seed.items()
            if results
        },
    }


def false_alarms(folder: Path, rows: int, seeds: int, evidently: Evidently | None) -> dict[str, Any]:
    """Unshifted tables: reference and current drawn independently, per seed."""
    counts = {rule: {"columns": 0, "tables": 0} for rule in RULES}
    largest: dict[str, float] = {}
    largest_evidently: dict[str, float] = {}
    for seed in range(seeds):
        reference, _ = tables(rows, 10_000 + seed)
        current, _ = tables(rows, 20_000 + seed)
        found = ours(reference, current, largest)
        if evidently is not None:
            reference_path, current_path = folder / "fa-reference.parquet", folder / "fa-current.parquet"
            reference.to_parquet(reference_path, index=False)
            current.to_parquet(current_path, index=False)
            found["evidently"] = evidently.flagged(reference_path, current_path, [*NUMERIC, *CATEGORICAL])
            for method, value in evidently.values.values():
                largest_evidently[method] = max(largest_evidently.get(method, 0.0), value)
        for rule, flagged in found.items():
            counts[rule]["columns"] += len(flagged)
            counts[rule]["tables"] += bool(flagged)
    columns = len(NUMERIC) + len(CATEGORICAL)
    return {
        "rows": rows,
        "seeds": seeds,
        "per_column": {r: c["columns"] / (seeds * columns) for r, c in counts.items() if r != "evidently" or evidently},
        "per_table": {r: c["tables"] / seeds for r, c in counts.items() if r != "evidently" or evidently},
        "flagged_columns": {r: c["columns"] for r, c in counts.items() if r != "evidently" or evidently},
        "largest_effect_sizes": {"ours": largest, "evidently": largest_evidently},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000], help="none: false alarms only"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the threshold search below --large-rows")
    parser.add_argument("--large-rows", type=int, default=1_000_000, help="from here: --large-seeds, Evidently subset")
    parser.add_argument("--large-seeds", type=int, default=1)
    parser.add_argument("--false-alarm-rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--false-alarm-seeds", type=int, default=100)
    parser.add_argument("--evidently-python", help="python of a virtualenv with evidently 0.7.23 (optional)")
    parser.add_argument("--out", help="also write the JSON result to this file")
    args = parser.parse_args()
    import pandas  # noqa: F401  (imports outside the measured work)

    started = time.perf_counter()
    evidently = Evidently(args.evidently_python) if args.evidently_python else None
    result: dict[str, Any] = {"sensitivity": [], "false_alarms": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-drift-sensitivity-") as tmp:
            for rows in args.false_alarm_rows:
                result["false_alarms"].append(false_alarms(Path(tmp), rows, args.false_alarm_seeds, evidently))
                print(json.dumps(result["false_alarms"][-1]), flush=True)
            for rows in args.rows:
                large = rows >= args.large_rows
                seeds = args.large_seeds if large else args.seeds
                result["sensitivity"].append(sensitivity(Path(tmp), rows, seeds, evidently, subset=large))
                print(json.dumps(result["sensitivity"][-1]["worst"] | {"rows": rows}), flush=True)
    finally:
        if evidently is not None:
            result["evidently_runs"] = {"runs": evidently.runs, "seconds": round(evidently.seconds, 1)}
            evidently.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
