"""Drift on N rows x 20 columns (15 numeric, 5 categorical; 5 shifted) vs Evidently's DataDriftPreset.

Writes a reference and a current Parquet file, then times, in one run on this machine:
- ours: ``core.operations.drift.detect.detect_drift`` in this process (imports excluded), and checks it flags
  exactly the shifted columns;
- Evidently: ``Report([DataDriftPreset()]).run(current, reference)`` in its own Python
  (``--evidently-python``; Evidently 0.7 does not import with pandas 3.1, so it lives in a
  separate virtualenv with pandas 2.3; imports excluded there too).

    python3 -m venv /tmp/evidently && /tmp/evidently/bin/pip install "evidently==0.7.*" "pandas==2.3.*" pyarrow
    .venv/bin/python benchmarks/drift.py --rows 1000000 --evidently-python /tmp/evidently/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
SHIFTED = ["num_00", "num_01", "num_02", "cat_0", "cat_1"]

EVIDENTLY_SCRIPT = """
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference = pd.read_parquet(sys.argv[1])
current = pd.read_parquet(sys.argv[2])
start = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current, reference)
seconds = time.perf_counter() - start
found = [m for m in snapshot.dict()["metrics"] if "DriftedColumnsCount" in str(m.get("metric_id", ""))]
print(json.dumps({"seconds": seconds, "drifted_columns_count": found[0]["value"] if found else None}, default=str))
"""


def write_inputs(folder: Path, rows: int) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)

    def table(shift: bool) -> pd.DataFrame:
        data = {}
        for i, name in enumerate(NUMERIC):
            mean = 100.0 + i + (5.0 if shift and name in SHIFTED else 0.0)  # shifted: half a std (sd 10)
            values = rng.normal(mean, 10.0, rows)
            values[rng.random(rows) < 0.02] = np.nan
            data[name] = values
        for name in CATEGORICAL:
            shares = [0.4, 0.3, 0.2, 0.1]
            if shift and name in SHIFTED:
                shares = [0.25, 0.25, 0.25, 0.25]
            data[name] = rng.choice(np.array(["a", "b", "c", "d"]), rows, p=shares)
        return pd.DataFrame(data)

    reference, current = folder / "reference.parquet", folder / "current.parquet"
    table(False).to_parquet(reference, index=False)
    table(True).to_parquet(current, index=False)
    return reference, current


def ours(reference_path: Path, current_path: Path) -> dict:
    import pandas as pd

    from airflow_mlops.core.operations.drift.detect import detect_drift

    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    start = time.perf_counter()
    report = detect_drift(reference, current, NUMERIC, CATEGORICAL)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "drifted": report.drifted_features,
        "exactly_the_shifted_columns": sorted(report.drifted_features) == sorted(SHIFTED),
        "largest_unshifted_effect": max(f.effect or 0.0 for f in report.features if f.feature not in SHIFTED),
        "smallest_unshifted_p_value": min(f.p_value or 1.0 for f in report.features if f.feature not in SHIFTED),
    }


def evidently(python: str, reference_path: Path, current_path: Path) -> dict:
    done = subprocess.run(
        [python, "-c", EVIDENTLY_SCRIPT, str(reference_path), str(current_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently-python", help="python of a virtualenv with evidently 0.7 (optional)")
    args = parser.parse_args()
    import pandas  # noqa: F401  (imports excluded from the timing)
    import scipy.stats  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        reference, current = write_inputs(Path(tmp), args.rows)
        result: dict = {"rows": args.rows, "columns": 20, "shifted": SHIFTED, "ours": ours(reference, current)}
        if args.evidently_python:
            result["evidently"] = evidently(args.evidently_python, reference, current)
            if "seconds" in result["evidently"]:
                result["speedup"] = round(result["evidently"]["seconds"] / result["ours"]["seconds"], 1)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
