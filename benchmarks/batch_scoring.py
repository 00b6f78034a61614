"""Batch scoring of N-row files with the champion: seconds and peak memory, chunked.

Trains the example churn spec's champion once in a temporary local MLflow (SQLite), writes
Parquet inputs of the requested sizes with the synthetic churn generator (label dropped:
a scoring batch), then scores each file with ``operate_stages.score_batches`` in a fresh
Python process, so each run's peak RSS (``ru_maxrss``) is its own. Reported per run: the
seconds of ``score_batches`` (validation, scoring, logging, publishing) and of its
validation; the RSS before scoring (libraries imported, nothing read) and its peak so far
(the imports' own peak); the peak during validation (which reads one whole column at a
time); the RSS left after validation; the peak during the chunked scoring alone (the peak is
reset after validation, Linux ``/proc/self/clear_refs``); and the process's overall peak.

    .venv/bin/python benchmarks/batch_scoring.py --rows 500000 2000000
    .venv/bin/python benchmarks/batch_scoring.py --rows 2000000 --chunk-rows 2000000   # one chunk: the old way
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airflow_mlops.core.model import release
from airflow_mlops.core.operations import scoring
from airflow_mlops.core.registry.client import Registry

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "include" / "pipelines" / "churn.yaml"
GENERATE_CHUNK = 250_000


def _rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_high_water() -> None:
    with open("/proc/self/clear_refs", "w") as handle:  # Linux: "5" resets the peak RSS to the current RSS
        handle.write("5")


def train_champion(home: str) -> str:
    """The example spec's champion, trained on one 3,000-row synthetic batch and promoted."""
    from airflow_mlops import layout
    from airflow_mlops.core.data import stages as data_stages
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.landing import inbox as landing
    from airflow_mlops.core.model import stages as model_stages
    from airflow_mlops.spec import load_spec

    spec = load_spec(SPEC)
    tracking_uri = f"sqlite:///{home}/mlflow.db"
    registry = Registry(tracking_uri)
    synthetic.land_batch("churn", layout.landing_dir(spec.name, "training"), dt.date(2026, 1, 1), 3000, 1)
    landing.claim_new_files(
        layout.landing_dir(spec.name, "training"), layout.lake_dir(spec.name, "labeled"), (".parquet",)
    )
    lineage = {"dag_id": "churn_training", "run_id": "bench"}
    dataset = data_stages.ingest_labeled(spec, "bench")
    split = data_stages.split_dataset(spec, dataset, "bench")
    training = model_stages.train_model(spec, registry, split, dataset, lineage, skip_if_already_trained=False)
    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    package = model_stages.package_candidate(spec, registry, training, split["test"]["uri"])
    registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage, package)
    gate = release.gate_candidate(spec, registry, registered, evaluation, package)
    release.promote_candidate(registry, gate, by="benchmark")
    return tracking_uri


def generate(path: str, rows: int) -> None:
    """A scoring batch of ``rows`` churn rows (unique ids, no label), written 250,000 rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.data.synthetic import churn_batch

    writer = None
    for number, start in enumerate(range(0, rows, GENERATE_CHUNK)):
        frame = churn_batch(min(GENERATE_CHUNK, rows - start), seed=100 + number).drop(columns=["churned"])
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def score(path: str, tracking_uri: str, chunk_rows: int) -> dict[str, float]:
    import pyarrow.parquet  # noqa: F401
    import sklearn  # noqa: F401

    from airflow_mlops.core.operations import stages as operate_stages
    from airflow_mlops.spec import ScoringSpec, load_spec

    spec = load_spec(SPEC).model_copy(update={"scoring": ScoringSpec(chunk_rows=chunk_rows)})
    # Split the time and the peak between validation (whole columns) and the chunked scoring.
    phases: dict[str, float] = {}
    validate = scoring.validate_file

    def timed_validation(*args: object, **kwargs: object) -> bool:
        started = time.perf_counter()
        try:
            return validate(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            phases["validate_seconds"] = round(time.perf_counter() - started, 2)
            phases["validate_peak_mib"] = round(_peak_mib(), 0)
            phases["rss_after_validate_mib"] = round(_rss_mib(), 0)
            _reset_high_water()  # what follows is the chunked scoring and logging (resets ru_maxrss too)

    scoring.validate_file = timed_validation  # type: ignore[assignment]
    before, peak_before = _rss_mib(), _peak_mib()
    start = time.perf_counter()
    summary = operate_stages.score_batches(spec, Registry(tracking_uri), [path], f"bench-{os.getpid()}")
    seconds = time.perf_counter() - start
    scoring_peak = _peak_mib()  # ru_maxrss since the reset after validation
    return {
        "rows": summary["rows"],
        "chunk_rows": chunk_rows,
        "seconds": round(seconds, 2),
        **phases,
        "rss_before_mib": round(before, 0),
        "peak_before_mib": round(peak_before, 0),
        "scoring_peak_mib": round(scoring_peak, 0),
        "peak_rss_mib": round(max(scoring_peak, phases.get("validate_peak_mib", 0.0)), 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_000_000])
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, metavar=("ACTION", "PATH", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        action, path, arg = args.child
        if action == "generate":
            generate(path, int(arg))
        else:
            print(json.dumps(score(path, arg, args.chunk_rows)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        os.environ["AIRFLOW_MLOPS_HOME"] = f"{tmp}/home"
        os.environ.pop("AIRFLOW_MLOPS_ARTIFACT_ROOT", None)
        os.environ.pop("AIRFLOW_MLOPS_LANDING_ROOT", None)
        started = time.perf_counter()
        tracking_uri = train_champion(f"{tmp}/home")
        print(f"champion trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        me = [sys.executable, __file__, "--chunk-rows", str(args.chunk_rows)]
        for rows in args.rows:
            path = f"{tmp}/input-{rows}.parquet"
            subprocess.run([*me, "--child", "generate", path, str(rows)], check=True)
            output = subprocess.run([*me, "--child", "score", path, tracking_uri], check=True, capture_output=True)
            result = json.loads(output.stdout.decode().strip().splitlines()[-1])
            result["input_mib"] = round(os.path.getsize(path) / 2**20, 1)
            print(json.dumps(result), flush=True)
            os.remove(path)


if __name__ == "__main__":
    main()
