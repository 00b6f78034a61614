"""Ingest + profile + validate on N rows x 20 columns (15 numeric, 5 categorical), in-process.

Library imports are timed separately and excluded from the stage timings. The input is a
Parquet file written beforehand (not timed). Peak memory is the process's max RSS.

    .venv/bin/python benchmarks/data_stage.py --rows 1000000
    .venv/bin/python benchmarks/data_stage.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time


def _import_libraries() -> float:
    start = time.perf_counter()
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import airflow_mlops.core.data.ingest
    import airflow_mlops.core.data.stages
    import airflow_mlops.core.data.validation.suite  # noqa: F401

    return time.perf_counter() - start


def write_input(path: str, rows: int, seed: int = 0, row_group: int = 500_000) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, row_group):
        n = min(row_group, rows - start)
        data = {"row_id": np.char.add("r", np.arange(start, start + n).astype(str))}
        for i in range(15):
            values = rng.normal(100 + i, 10 + i, n)
            values[rng.random(n) < 0.02] = np.nan
            data[f"num_{i:02d}"] = values
        for i in range(5):
            data[f"cat_{i}"] = rng.choice(np.array(["a", "b", "c", "d", "e", "f"][: 3 + i % 4]), n)
        data["label"] = (rng.random(n) < 0.3).astype("int64")
        table = pa.Table.from_pandas(pd.DataFrame(data), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def spec_for(folder: str):
    from airflow_mlops.spec import parse_spec

    numeric = [f"num_{i:02d}" for i in range(15)]
    categorical = [f"cat_{i}" for i in range(5)]
    expectations = [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": c, "min_value": -1e6, "max_value": 1e6}}
        for c in numeric
    ] + [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": c, "value_set": list("abcdef")}}
        for c in categorical
    ]
    label_check = {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1]}}
    expectations.append(label_check)
    spec = {
        "name": "bench",
        "data": {
            "source": {"uri": f"{folder}/input.parquet"},
            "dtypes": {"label": "int"},
            "id_column": "row_id",
            "label": "label",
            "features": {"numeric": numeric, "categorical": categorical},
        },
        "validation": {"min_rows": 1, "expectations": expectations},
        "model": {"estimator": "logistic_regression"},
    }
    return parse_spec(json.dumps(spec), source="benchmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    import_seconds = _import_libraries()
    from airflow_mlops.core.data import stages as data_stages

    with tempfile.TemporaryDirectory(prefix="bench-data-") as folder:
        write_input(f"{folder}/input.parquet", args.rows)
        os.environ["AIRFLOW_MLOPS_HOME"] = folder
        spec = spec_for(folder)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        dataset = data_stages.ingest_labeled(spec, "bench")
        ingest_seconds = time.perf_counter() - start
        peak_after_ingest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        validated = data_stages.validate_dataset(spec, dataset, "bench")
        validate_seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": args.rows,
                "columns": 22,
                "expectations_evaluated": validated["evaluated"],
                "import_seconds_excluded": round(import_seconds, 2),
                "ingest_and_profile_seconds": round(ingest_seconds, 2),
                "validate_seconds": round(validate_seconds, 2),
                "total_seconds": round(ingest_seconds + validate_seconds, 2),
                "peak_rss_mib": round(peak),
                "peak_rss_after_ingest_mib": round(peak_after_ingest),
                "rss_before_stages_mib": round(rss_before),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
