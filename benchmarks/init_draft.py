"""``airflow-mlops init`` end to end: the real CLI in a subprocess on a generated N-row file.

The input (CSV and Parquet, an id, 9 numeric columns with 1% missing values, 3 categorical,
a free-text and a constant column, a text label; 16 columns) is written beforehand and not
timed. Each run is a fresh ``airflow-mlops init ... --force`` process: interpreter start,
imports, reading, typing, profiling, drafting, validating and writing the spec and the
three DAG files. Wall time and the process's CPU time (user + system) are reported: on a
shared machine the first depends on the load, the second much less. Prints JSON.

    .venv/bin/python benchmarks/init_draft.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_inputs(folder: str, rows: int, seed: int = 0) -> dict[str, str]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, object] = {"customer_id": np.char.add("c", np.arange(rows).astype(str))}
    for i in range(8):
        values = rng.normal(50 + i, 10, rows).round(3)
        values[rng.random(rows) < 0.01] = np.nan
        data[f"usage {i} (gb)"] = values
    data["support/calls"] = rng.integers(0, 6, rows)
    data["plan"] = rng.choice(["basic", "standard", "premium"], rows)
    data["region"] = rng.choice(["north", "south", "east", "west"], rows)
    data["payment.method"] = rng.choice(["card", "transfer"], rows)
    data["note"] = np.char.add("ticket ", rng.integers(0, 10**9, rows).astype(str))
    data["const"] = 1
    data["churned"] = rng.choice(["yes", "no"], rows)
    frame = pd.DataFrame(data)
    paths = {"csv": os.path.join(folder, "customers.csv"), "parquet": os.path.join(folder, "customers.parquet")}
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    return paths


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_init(path: str, out: str) -> tuple[float, float, str]:
    command = [str(Path(sys.executable).with_name("airflow-mlops")), "init", path, "--label", "churned",
               "--output-dir", out, "--force"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"init failed ({done.returncode}): {done.stderr}")
    return seconds, _children_cpu() - cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-init-") as folder:
        paths = write_inputs(folder, args.rows)
        results: dict[str, object] = {"rows": args.rows, "columns": 16, "load_average_before": os.getloadavg()[0]}
        for fmt, path in paths.items():
            times, cpu, stdout = [], [], ""
            for _ in range(args.repeat):
                seconds, cpu_seconds, stdout = run_init(path, os.path.join(folder, "project"))
                times.append(seconds)
                cpu.append(cpu_seconds)
            spec = Path(folder, "project", "include", "pipelines", "customers.yaml").read_text()
            results[fmt] = {
                "file_mib": round(os.path.getsize(path) / 2**20, 1),
                "seconds": [round(t, 2) for t in times],
                "median_s": round(statistics.median(times), 2),
                "cpu_seconds": [round(t, 2) for t in cpu],
                "summary_head": stdout.splitlines()[:3],
                "spec_lines": len(spec.splitlines()),
            }
        results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
