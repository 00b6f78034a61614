"""DAG parse time: each file in dags/ versus the same kind of file importing the ML stack.

Each measurement runs in a fresh interpreter that imports Airflow first (not counted),
then times ``DagBag`` over one file, ``--repeat`` times, and reports the median.

    .venv/bin/python benchmarks/dag_parse_time.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import sys, time
import airflow  # noqa: F401  (Airflow's own import cost is excluded)
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
elapsed = time.perf_counter() - start
assert not bag.import_errors, bag.import_errors
print(elapsed)
"""

HEAVY_TOP_LEVEL = """
import great_expectations  # noqa: F401
import mlflow  # noqa: F401
import pandas  # noqa: F401
import sklearn.ensemble  # noqa: F401
from pathlib import Path
from airflow_mlops.factories import build_training_dag
dag = build_training_dag(Path("{spec}"))
"""


def parse_seconds(path: Path, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "AIRFLOW_HOME": f"{tmp}/airflow",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_MLOPS_HOME": f"{tmp}/home",
        }
        heavy = Path(tmp) / "heavy_training.py"
        heavy.write_text(HEAVY_TOP_LEVEL.format(spec=REPO / "include" / "pipelines" / "churn.yaml"))
        files = [*sorted((REPO / "dags").glob("*.py")), heavy]
        results = {}
        for path in files:
            runs = [parse_seconds(path, env) for _ in range(args.repeat)]
            results[path.name] = {"median_s": round(statistics.median(runs), 4), "min_s": round(min(runs), 4)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
