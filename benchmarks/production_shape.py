"""The loop on the embedded stack beside the production shape, and what a lost worker costs.

One run, same data (the churn pipeline alone, ``--rows`` rows per batch, the demo's seeds):

1. the embedded stack (``airflow standalone``: LocalExecutor, SQLite, local folders) runs the
   demo loop (train on arrival -> score -> monitor -> drift -> retrain -> serve);
2. the native production shape (``stack up --production``: two Celery workers on Redis,
   PostgreSQL, S3 by moto) runs the same loop;
3. on the production shape, one more labeled batch lands and the worker running one of its
   trials is killed (SIGKILL, tasks and all). Reported: from the kill to the retried trial's
   end, against the heartbeat timeout + the retry delay + the retried trial's own run time.

    .venv/bin/python benchmarks/production_shape.py --rows 3000

Prints one JSON document. Needs PostgreSQL and Redis on 127.0.0.1 (as ``stack up --production``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_mlops import layout
from airflow_mlops.core.data import synthetic
from airflow_mlops.devstack.chaos import WorkerKiller
from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.processes import free_port
from airflow_mlops.devstack.production import ProductionStack
from airflow_mlops.devstack.production_config import ProductionConfig
from airflow_mlops.devstack.rest import AirflowClient
from airflow_mlops.devstack.stack import Stack, StackConfig, single_pipeline_project
from airflow_mlops.spec import load_spec


def loop_summary(demo: DemoLoop, seconds: float) -> dict[str, Any]:
    result = demo.result
    return {
        "loop_seconds": round(seconds, 1), "failures": result.failures,
        "runs": [{"dag": r["dag_id"], "state": r["state"], "seconds": round(r["seconds"], 1)} for r in result.runs],
        "champion": result.champion,
    }  # fmt: skip


def embedded(base: Path, dags: Path, pipelines: Path, rows: int) -> dict[str, Any]:
    cfg = StackConfig(root=base / "embedded", dags_folder=dags, pipelines_folder=pipelines,
                      airflow_port=free_port(), mlflow_port=free_port())  # fmt: skip
    started = time.monotonic()
    stack = Stack(cfg).start()
    up = time.monotonic() - started
    demo = DemoLoop(stack, rows=rows, say=lambda _: None)
    try:
        loop_started = time.monotonic()
        demo.run()
        return {"up_seconds": round(up, 1), **loop_summary(demo, time.monotonic() - loop_started)}
    finally:
        demo.stop_serving()
        stack.stop()


def production(base: Path, dags: Path, pipelines: Path, rows: int, heartbeat: int) -> dict[str, Any]:
    cfg = ProductionConfig(root=base / "production", dags_folder=dags, pipelines_folder=pipelines, extra_env={
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(heartbeat),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    })  # fmt: skip
    started = time.monotonic()
    stack = ProductionStack(cfg).start()
    up = time.monotonic() - started
    token = cfg.variables["AIRFLOW_MLOPS_SERVE_TOKEN"]
    demo = DemoLoop(stack, rows=rows, say=lambda _: None, serving=(cfg.serving_url, token))  # type: ignore[arg-type]
    try:
        loop_started = time.monotonic()
        demo.run()
        out = {"up_seconds": round(up, 1), **loop_summary(demo, time.monotonic() - loop_started)}
        out["worker_kill"] = kill_during_trials(stack, demo, rows, heartbeat, pipelines)
        return out
    finally:
        stack.stop()


def kill_during_trials(stack: ProductionStack, demo: DemoLoop, rows: int, heartbeat: int, pipelines: Path) -> Any:
    cfg = stack.config
    client = AirflowClient(cfg.airflow_url, "admin", stack.admin_password())
    training = demo.dags["training"]
    known = {r["dag_run_id"] for r in client.dag_runs(training)}
    killer = WorkerKiller(stack, client, training, known)
    killer.start()
    synthetic.land_batch("churn", layout.landing_dir("churn", "training"), dt.date(2026, 11, 23), rows, seed=7)
    run = client.wait_for_new_run(training, known, 900)
    killer.done.set()
    if killer.killed is None:
        return {"error": "no trial was seen running on a worker", "run_state": run["state"]}
    retried = next(
        ti for ti in client.task_instances(training, run["dag_run_id"])
        if ti["task_id"] == "model.trial" and ti["map_index"] == killer.killed["map_index"]
    )  # fmt: skip
    end = dt.datetime.fromisoformat(retried["end_date"].replace("Z", "+00:00")).timestamp()
    start = dt.datetime.fromisoformat(retried["start_date"].replace("Z", "+00:00")).timestamp()
    delay = load_spec(pipelines / "churn.yaml").retries.delay_seconds
    return {
        "run_state": run["state"], "killed_worker": killer.killed["worker"], "retried_on": retried["hostname"],
        "try_number": retried["try_number"], "kill_to_retried_trial_end_seconds": round(end - killer.killed["at"], 1),
        "retried_trial_seconds": round(end - start, 1), "heartbeat_timeout_seconds": heartbeat,
        "retry_delay_seconds": delay, "bound_seconds": round(heartbeat + delay + (end - start), 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--heartbeat-timeout", type=int, default=30)
    args = parser.parse_args()
    environment = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="production-shape-") as tmp:
        base = Path(tmp)
        dags, pipelines = single_pipeline_project(base / "project")
        out: dict[str, Any] = {"rows_per_batch": args.rows, "cpus": os.cpu_count()}
        out["embedded"] = embedded(base, dags, pipelines, args.rows)
        os.environ.clear()
        os.environ.update(environment)
        out["production"] = production(base, dags, pipelines, args.rows, args.heartbeat_timeout)
        os.environ.clear()
        os.environ.update(environment)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
