"""Serving: ``airflow-mlops serve`` against ``mlflow models serve --env-manager local``, same model.

One run on this machine, side by side: a churn champion (v1) and a second version (v2)
are trained into a fresh registry, then an ``mlflow server`` is started on it (the
production shape: servers reach the registry over HTTP); both servers load the champion (ours its ONNX
graph, MLflow its scikit-learn pyfunc) and answer the same request bodies, real rows of
a synthetic scoring batch, posted to ``/invocations`` as ``dataframe_records``. The load
comes from a separate process, ``wrk`` (Debian package ``wrk``; ``apt-get install wrk``)
or, without it, ``benchmarks/loadgen.py`` (Python, asyncio; it needs more CPU per request,
CPU the servers then lack on 2 cores): 16 keep-alive connections, one request in flight
each, a warm-up run first, then ``--seconds`` measured. Our server logs every prediction
(Parquet, flushed by size and time) during the measurement.

After the throughput runs, a hot-swap run moves the ``champion`` alias to v2 in the
middle of a 100-row load on our server and counts failed requests; then our server gets
SIGTERM and the rows in its prediction log are counted against the rows it answered.

    .venv/bin/python benchmarks/serving.py --seconds 15

Needs the venv's bin folder on PATH for ``mlflow models serve`` (the script adds it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from airflow_mlops.core.model import release

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "include" / "pipelines" / "churn.yaml"
TOKEN = "benchmark-token-0123456789"


def pq_rows(uri: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(uri).metadata.num_rows)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def train_two_versions(tracking_uri: str) -> None:
    """v1 (champion) and v2 (registered, not promoted) of the churn model, via the core stages."""
    from airflow_mlops import layout
    from airflow_mlops.core.data import stages as data_stages
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.landing import inbox as landing
    from airflow_mlops.core.model import stages as model_stages
    from airflow_mlops.core.registry import promotion
    from airflow_mlops.core.registry.client import Registry
    from airflow_mlops.spec import load_spec

    spec, registry = load_spec(SPEC), Registry(tracking_uri)
    for index, seed in enumerate((1, 2), start=1):
        inbox = layout.landing_dir(spec.name, "training")
        synthetic.land_batch("churn", inbox, dt.date(2026, 1, index), 5000, seed)
        landing.claim_new_files(inbox, layout.lake_dir(spec.name, "labeled"), (".parquet",))
        run_id = f"bench-{index}"
        lineage = {"dag_id": "benchmark", "run_id": run_id}
        dataset = data_stages.ingest_labeled(spec, run_id)
        data_stages.validate_dataset(spec, dataset, run_id)
        split = data_stages.split_dataset(spec, dataset, run_id)
        training = model_stages.train_model(spec, registry, split, dataset, lineage, skip_if_already_trained=False)
        evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
        package = model_stages.package_candidate(spec, registry, training, split["test"]["uri"])
        registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage, package)
        if index == 1:
            promotion.promote(registry, spec.registered_model_name, registered["version"], "benchmark", "bench")


def request_bodies(folder: Path) -> dict[int, Path]:
    """Bodies of 1 and 100 real rows (a synthetic scoring batch, label left out)."""
    import pandas as pd

    from airflow_mlops.core.data import synthetic

    landed = synthetic.land_batch("churn", str(folder / "rows"), dt.date(2026, 2, 1), 1000, 7, include_label=False)
    frame = pd.read_parquet(landed.uri)
    records = json.loads(frame.to_json(orient="records"))  # NaN -> null
    # Missing categories as "": the form the scikit-learn Pipeline takes (MLflow's pyfunc
    # feeds it the body as is and fails on null text; our app maps null to "" itself).
    from airflow_mlops.spec import load_spec

    categorical = load_spec(SPEC).data.features.categorical
    for record in records:
        for column in categorical:
            if record[column] is None:
                record[column] = ""
    bodies = {}
    for size in (1, 100):
        path = folder / f"body-{size}.json"
        path.write_text(json.dumps({"dataframe_records": records[:size]}))
        bodies[size] = path
    return bodies


def wait_until(url: str, seconds: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as answer:
                text = answer.read().decode()
                return json.loads(text) if text.startswith("{") else {"body": text}
        except Exception as exc:
            last = exc
            time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {seconds} s: {last}")


WRK_REPORT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
local f = io.open(os.getenv("BENCH_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def load(port: int, body: Path, seconds: float, warmup: float, token: str | None) -> dict[str, Any]:
    if shutil.which("wrk"):
        return load_with_wrk(port, body, seconds, warmup, token)
    command = [sys.executable, str(REPO / "benchmarks" / "loadgen.py"), "--port", str(port), "--body-file",
               str(body), "--seconds", str(seconds), "--warmup", str(warmup), "--connections", "16"]  # fmt: skip
    if token:
        command += ["--token", token]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + warmup + 120)
    return dict(json.loads(out.stdout))


def load_with_wrk(port: int, body: Path, seconds: float, warmup: float, token: str | None) -> dict[str, Any]:
    script = body.parent / "wrk_report.lua"
    script.write_text(WRK_REPORT)
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_TOKEN=token or "")
    url = f"http://127.0.0.1:{port}/invocations"

    def wrk(duration: float) -> dict[str, Any]:
        command = ["wrk", "-t1", "-c16", f"-d{max(1, round(duration))}s", "-s", str(script), url]
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env, timeout=duration + 120)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    warm = wrk(warmup)
    run = wrk(seconds)
    errors = run["status_errors"] + run["socket_errors"]
    warm_errors = warm["status_errors"] + warm["socket_errors"]
    duration = run["duration_us"] / 1e6
    return {
        "load_generator": "wrk -t1 -c16",
        "connections": 16,
        "seconds": round(duration, 2),
        "requests": run["requests"],
        "ok": run["requests"] - errors,
        "errors": errors,
        "ok_including_warmup": run["requests"] - errors + warm["requests"] - warm_errors,
        "requests_per_second": round(run["requests"] / duration, 1),
        "p50_ms": run["p50_us"] / 1000,
        "p90_ms": run["p90_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "max_ms": run["max_us"] / 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of both servers")
    parser.add_argument("--output", help="write the results as JSON here too")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="airflow-mlops-serving-bench-"))
    env = dict(os.environ)
    env.update(
        AIRFLOW_MLOPS_HOME=str(root / "home"),
        MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db",
        AIRFLOW_MLOPS_SERVE_TOKEN=TOKEN,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
        env.pop(var, None)
    os.environ.update({k: env[k] for k in ("AIRFLOW_MLOPS_HOME", "MLFLOW_TRACKING_URI")})
    tracking_uri = env["MLFLOW_TRACKING_URI"]
    print(f"set-up in {root}: training v1 and v2 ...", flush=True)
    started = time.perf_counter()
    train_two_versions(tracking_uri)
    bodies = request_bodies(root)
    print(f"set-up took {time.perf_counter() - started:.0f} s", flush=True)

    from airflow_mlops import layout
    from airflow_mlops.core.io import storage
    from airflow_mlops.core.registry import promotion
    from airflow_mlops.core.registry.client import Registry
    from airflow_mlops.spec import load_spec

    spec = load_spec(SPEC)
    ours_port, mlflow_port, registry_port = free_port(), free_port(), free_port()
    logs = open(root / "servers.log", "w")  # noqa: SIM115 (kept open for the servers' lifetime)
    tracking_server = subprocess.Popen(
        ["mlflow", "server", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1", "--port", str(registry_port),
         "--workers", "1"],
        env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    wait_until(f"http://127.0.0.1:{registry_port}/health", 120)
    tracking_uri = env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{registry_port}"
    ours = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow-mlops"), "serve", str(SPEC), "--port", str(ours_port),
         "--workers", str(args.workers)],
        env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    theirs = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", f"models:/{spec.registered_model_name}@champion", "--env-manager",
         "local", "-w", str(args.workers), "-p", str(mlflow_port), "-h", "127.0.0.1"],
        env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    results: dict[str, Any] = {"workers": args.workers, "seconds": args.seconds, "runs": []}
    try:
        wait_until(f"http://127.0.0.1:{ours_port}/health/ready", 120)
        wait_until(f"http://127.0.0.1:{mlflow_port}/ping", 180)
        answered_rows = 0
        for size, body in bodies.items():
            for server, port, token in (("airflow-mlops", ours_port, TOKEN), ("mlflow", mlflow_port, None)):
                run = load(port, body, args.seconds, args.warmup, token)
                run.update(server=server, rows_per_request=size)
                results["runs"].append(run)
                if server == "airflow-mlops":
                    answered_rows += run["ok_including_warmup"] * size
                print(f"{server:>13}  {size:>3} row(s)/request: {run['requests_per_second']:>8.1f} req/s  "
                      f"p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms  errors {run['errors']}",
                      flush=True)  # fmt: skip

        # Hot swap under load: the alias moves to v2 a third of the way into the run.
        def move_alias() -> None:
            time.sleep(args.warmup + args.seconds / 3)
            promotion.promote(Registry(tracking_uri), spec.registered_model_name, "2", "benchmark swap", "bench")

        mover = threading.Thread(target=move_alias)
        mover.start()
        swap = load(ours_port, bodies[100], args.seconds, args.warmup, TOKEN)
        mover.join()
        answered_rows += swap["ok_including_warmup"] * 100
        versions = {wait_until(f"http://127.0.0.1:{ours_port}/health/ready", 10)["model_version"] for _ in range(8)}
        swap.update(server="airflow-mlops", rows_per_request=100, scenario="champion alias moved v1 -> v2 under load",
                    versions_after=sorted(versions))  # fmt: skip
        results["swap"] = swap
        print(f"hot swap under load: {swap['requests']} requests, errors {swap['errors']}, p99 {swap['p99_ms']} ms, "
              f"serving {sorted(versions)} after", flush=True)  # fmt: skip
    finally:
        for process in (ours, theirs, tracking_server):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in (ours, theirs, tracking_server):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        logs.close()
    import re

    files = storage.list_files_recursive(layout.prediction_log_dir(spec.name), (".parquet",))
    logged = sum(pq_rows(f) for f in files)
    # Each worker reports at shutdown how many rows it answered (wrk's count misses the
    # requests in flight when it stops, which the server still answered and logged).
    server_log = (root / "servers.log").read_text()
    answered_by_servers = sum(int(n) for n in re.findall(r"shut down: answered (\d+) rows", server_log))
    results["prediction_log"] = {
        "files": len(files),
        "rows_logged": logged,
        "rows_answered_by_workers": answered_by_servers,
        "rows_answered_seen_by_load_generator": answered_rows,
    }
    print(f"prediction log after SIGTERM: {logged} rows in {len(files)} files; the workers answered "
          f"{answered_by_servers} rows ({answered_rows} answers seen by the load generator)")  # fmt: skip

    by = {(r["server"], r["rows_per_request"]): r for r in results["runs"]}
    for size in bodies:
        ratio = by[("airflow-mlops", size)]["requests_per_second"] / max(
            by[("mlflow", size)]["requests_per_second"], 1e-9
        )
        results[f"throughput_ratio_{size}_rows"] = round(ratio, 1)
        print(f"{size} row(s)/request: {ratio:.1f}x the throughput of mlflow models serve")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
