"""Reading a PostgreSQL table as a SQL source: seconds and peak memory per chunk size.

Creates a database ``amlops_sql_bench_<uuid8>`` on the local server (127.0.0.1:5432, user
postgres, trust auth) with a table of N rows and 13 columns of mixed types with NULLs (the
table of ``tests/component/core/data/test_sql_source.py``), then reads it with
``core.data.sql_source.read_to_parquet`` in a fresh Python process per chunk size, so each peak RSS
(``ru_maxrss``) is its own. Reported per run: rows, chunks, seconds of the read (query,
fetches, casting, Parquet), the RSS after the imports and the process's peak RSS. The
database is dropped at the end.

    .venv/bin/python benchmarks/sql_source.py --rows 500000 --chunk-rows 25000 500000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER = "127.0.0.1:5432"

CHILD = """
import json, resource, sys, tempfile, time
import sqlalchemy as sa
from airflow_mlops.spec import PipelineSpec, load_spec
from airflow_mlops.core.data.sql_source import read_to_parquet

database, chunk_rows, server = sys.argv[1], int(sys.argv[2]), sys.argv[4]
raw = load_spec(sys.argv[3]).model_dump(mode="json")
raw["data"]["source"] = {"chunk_rows": chunk_rows,
                         "sql": {"conn_id": "bench", "query": "SELECT * FROM customers ORDER BY row_id"}}
spec = PipelineSpec.model_validate(raw)
engine = sa.create_engine(f"postgresql+psycopg://postgres@{server}/{database}")
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    read = read_to_parquet(spec, engine, f"{tmp}/rows.parquet", None)
    seconds = time.perf_counter() - start
print(json.dumps({"rows": read.rows, "chunks": read.chunks, "chunk_rows": chunk_rows, "seconds": round(seconds, 1),
                  "rss_after_imports_mib": round(imported),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[25_000, 500_000])
    args = parser.parse_args()

    import sqlalchemy as sa

    sys.path[:0] = [str(REPO), str(REPO / "plugins")]
    from tests.component.core.data.test_sql_source import INSERT, TABLE

    name = f"amlops_sql_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"postgresql+psycopg://postgres@{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        engine = sa.create_engine(f"postgresql+psycopg://postgres@{SERVER}/{name}")
        with engine.begin() as connection:
            connection.exec_driver_sql(TABLE)
            connection.execute(sa.text(INSERT), {"first": 1, "last": args.rows})
        engine.dispose()
        spec = REPO / "include" / "pipelines" / "churn.yaml"
        env = {"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"}
        for chunk_rows in args.chunk_rows:
            out = subprocess.run([sys.executable, "-c", CHILD, name, str(chunk_rows), str(spec), SERVER], env=env,
                                 check=True, capture_output=True, text=True)  # fmt: skip
            print(json.dumps(json.loads(out.stdout.strip().splitlines()[-1])))
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
