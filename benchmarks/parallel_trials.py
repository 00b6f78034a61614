"""N HistGradientBoosting trials as parallel processes, with and without the thread cap.

Each trial is its own Python process, as a mapped Airflow task is: it loads the table,
imports scikit-learn (so its OpenMP and BLAS runtimes are loaded before any cap, as in a
task process that already imported them), then fits ``HistGradientBoostingClassifier`` on
it. Three ways:

- ``capped``: N processes at once, each inside ``core.model.threads.limit_threads`` with the cap the
  operators compute (``threads_per_task(available_cores(), N)``: 1 on 2 cores for N = 4);
- ``uncapped``: N processes at once, default threads (one per core each);
- ``sequential``: the N fits one after another, each capped at one thread.

Every process signals when it is ready (table loaded, libraries imported) and waits; the
fit phase's wall time runs from the moment all are released to the end of the last fit,
the total wall time from the first process's start to the last one's exit. CPU seconds per
fit (all its threads) show the work each way does, whatever else runs on the machine. Target: capped fit-phase wall time
<= 1.2 x (sum of the sequential single-thread fit times / cores).

    .venv/bin/python benchmarks/parallel_trials.py --trials 4 --rows 150000
    .venv/bin/python benchmarks/parallel_trials.py --modes capped,sequential  # skip the slow one

Prints one JSON document. ``--timeout`` bounds the uncapped way (its processes are
killed and the result says so).

``--stack`` runs the same comparison as mapped trials of real training DAGs on the embedded
stack (``devstack/stack.py``: ``airflow standalone`` with the LocalExecutor, ``core.parallelism``
4, and an MLflow server): two copies of the churn pipeline reading one ``--stack-rows``-row
table, each with one HistGradientBoosting candidate searched over ``--trials`` learning
rates (``model.cache: false``): ``bench_capped`` with the default cap, ``bench_uncapped``
with ``model.threads_per_task`` = cores (what an uncapped fit uses). Each is triggered once;
reported per DAG: the run's wall time, the trial phase (first trial start to last trial
end), each trial task's duration, and each child run's ``fit_seconds`` and ``threads`` param.

    .venv/bin/python benchmarks/parallel_trials.py --stack --trials 4 --stack-rows 400000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def child(data: str, threads: int | None, iters: int) -> None:
    """One trial: load, import, say ready, wait for go, fit, print the fit time as JSON."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_info

    from airflow_mlops.core.model.threads import limit_threads

    arrays = np.load(data)
    features, labels = arrays["x"], arrays["y"]
    print("ready", flush=True)
    sys.stdin.readline()
    started, cpu_started = time.perf_counter(), time.process_time()
    if threads is None:
        seen = sorted({lib["num_threads"] for lib in threadpool_info()})
        HistGradientBoostingClassifier(max_iter=iters, early_stopping=False, random_state=0).fit(features, labels)
    else:
        with limit_threads(threads):
            seen = sorted({lib["num_threads"] for lib in threadpool_info()})
            HistGradientBoostingClassifier(max_iter=iters, early_stopping=False, random_state=0).fit(features, labels)
    fit_seconds = round(time.perf_counter() - started, 3)
    cpu_seconds = round(time.process_time() - cpu_started, 3)  # all threads of this process
    print(json.dumps({"fit_seconds": fit_seconds, "fit_cpu_seconds": cpu_seconds, "ended_at": time.time(),
                      "threads_seen": seen}), flush=True)  # fmt: skip


def run_at_once(data: str, count: int, threads: int | None, iters: int, timeout: float) -> dict[str, object]:
    """Start ``count`` trial processes, release them together, wait for all (or the timeout)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    command = [sys.executable, __file__, "--child", data, "--iters", str(iters)]
    command += ["--threads", str(threads)] if threads is not None else []
    started = time.perf_counter()
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(count)]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    released, released_at = time.perf_counter(), time.time()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results, timed_out = [], False
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=max(0.0, timeout - (time.perf_counter() - released)))
            results.append(json.loads(out.strip().splitlines()[-1]))
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            proc.communicate()
    ended = time.perf_counter()
    last_fit = max((r["ended_at"] for r in results), default=time.time()) if not timed_out else time.time()
    return {
        "fit_phase_wall_seconds": round(last_fit - released_at, 2),
        "total_wall_seconds": round(ended - started, 2),
        "fit_seconds": [r["fit_seconds"] for r in results],
        "fit_cpu_seconds": [r["fit_cpu_seconds"] for r in results],
        "threads_seen": sorted({t for r in results for t in r["threads_seen"]}),
        "timed_out": timed_out,
    }


def _bench_spec(name: str, input_uri: str, trials: int, threads: int | None) -> dict[str, Any]:
    """The churn spec reading one table, with one HGB candidate over ``trials`` learning rates."""
    import yaml

    spec = yaml.safe_load((REPO / "include" / "pipelines" / "churn.yaml").read_text())
    spec["name"] = name
    spec["schedule"] = {"on_data_arrival": False, "on_drift": False}
    spec["data"]["source"] = {"uri": input_uri}
    spec["data"].pop("window_batches", None)
    rates = [round(0.02 + 0.03 * i, 3) for i in range(trials)]
    spec["model"] = {
        "task": "classification",
        "candidates": [{"estimator": "hist_gradient_boosting", "params": {"max_iter": 200, "early_stopping": False},
                        "search": {"method": "grid", "space": {"learning_rate": rates}}}],
        "registered_name": f"{name}_classifier",
        "cache": False,
        **({"threads_per_task": threads} if threads is not None else {}),
    }  # fmt: skip
    return dict(spec)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seconds(start: str | None, end: str | None) -> float | None:
    import datetime as dt

    if not start or not end:
        return None
    return round((dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds(), 2)


def stack_mode(args: argparse.Namespace) -> dict[str, Any]:
    """Mapped trials of two training DAGs (capped, uncapped) on the embedded stack."""
    import yaml

    sys.path.insert(0, str(REPO / "plugins"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")])
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.io import tables
    from airflow_mlops.core.model.threads import available_cores
    from airflow_mlops.core.registry.client import Registry
    from airflow_mlops.devstack.rest import AirflowClient
    from airflow_mlops.devstack.stack import Stack, StackConfig

    cores = available_cores()
    report: dict[str, Any] = {"mode": "stack", "trials": args.trials, "rows": args.stack_rows, "cores": cores,
                              "load_average_before": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="parallel-trials-stack-") as tmp:
        folder = Path(tmp)
        repo = folder / "repo"
        (repo / "dags").mkdir(parents=True)
        (repo / "include" / "pipelines").mkdir(parents=True)
        (repo / "plugins").symlink_to(REPO / "plugins")
        input_uri = str(folder / "input.parquet")
        tables.write_parquet(synthetic.churn_batch(args.stack_rows, seed=1), input_uri)
        dags = {"bench_capped": None, "bench_uncapped": cores}
        for name, threads in dags.items():
            spec_path = repo / "include" / "pipelines" / f"{name}.yaml"
            spec_path.write_text(yaml.safe_dump(_bench_spec(name, input_uri, args.trials, threads), sort_keys=False))
            dag_file = "from airflow_mlops.factories import build_training_dag\n"
            dag_file += f"dag = build_training_dag({str(spec_path)!r})\n"
            (repo / "dags" / f"{name}.py").write_text(dag_file)
        config = StackConfig(root=folder / "runtime", repo=repo, airflow_port=_free_port(), mlflow_port=_free_port())
        stack = Stack(config).start()
        try:
            client = AirflowClient(config.airflow_url, "admin", stack.admin_password())
            dag_ids = [f"{name}_training" for name in dags]
            client.wait_for_dags(dag_ids, timeout=300)
            for name in dags:
                dag_id = f"{name}_training"
                known = {r["dag_run_id"] for r in client.dag_runs(dag_id)}
                client.trigger(dag_id, conf={"force_retrain": True})
                run = client.wait_for_new_run(dag_id, known, timeout=args.timeout + 600)
                tis = [t for t in client.task_instances(dag_id, run["dag_run_id"]) if t["task_id"] == "model.trial"]
                starts = sorted(t["start_date"] for t in tis if t.get("start_date"))
                ends = sorted(t["end_date"] for t in tis if t.get("end_date"))
                mlflow_client = Registry(config.mlflow_url).client
                experiment = mlflow_client.get_experiment_by_name(name)
                trial_runs = "tags.cache_key != ''"  # the child runs (the parent has no cache key)
                children = mlflow_client.search_runs([experiment.experiment_id], trial_runs) if experiment else []
                report[name] = {
                    "state": run["state"],
                    "run_wall_seconds": _seconds(run.get("start_date"), run.get("end_date")),
                    "trial_phase_wall_seconds": _seconds(starts[0], ends[-1]) if starts and ends else None,
                    "trial_task_seconds": sorted(_seconds(t.get("start_date"), t.get("end_date")) or 0 for t in tis),
                    "fit_seconds": sorted(round(c.data.metrics.get("fit_seconds", 0.0), 2) for c in children),
                    "threads_param": sorted({c.data.params.get("threads") for c in children} - {None}),
                }
        finally:
            stack.stop()
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--iters", type=int, default=100, help="boosting iterations per fit")
    parser.add_argument("--modes", default="sequential,capped,uncapped")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for the uncapped way")
    parser.add_argument("--stack", action="store_true", help="mapped trials of training DAGs on the embedded stack")
    parser.add_argument("--stack-rows", type=int, default=400_000, help="rows of the churn table (--stack)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads, args.iters)
        return
    if args.stack:
        print(json.dumps(stack_mode(args), indent=2))
        return

    sys.path.insert(0, str(REPO / "plugins"))
    import numpy as np
    from sklearn.datasets import make_classification

    from airflow_mlops.core.model.threads import available_cores, threads_per_task

    cores = available_cores()
    cap = threads_per_task(cores, args.trials)
    modes = args.modes.split(",")
    report: dict[str, object] = {
        "trials": args.trials, "rows": args.rows, "features": args.features, "iters": args.iters,
        "cores": cores, "cap": cap.threads, "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="parallel-trials-") as folder:
        data = os.path.join(folder, "table.npz")
        features, labels = make_classification(
            n_samples=args.rows, n_features=args.features, n_informative=args.features // 2, random_state=0
        )
        np.savez(data, x=features.astype(np.float64), y=labels)
        if "sequential" in modes:
            runs = [run_at_once(data, 1, 1, args.iters, args.timeout) for _ in range(args.trials)]
            fits = [r["fit_seconds"][0] for r in runs]  # type: ignore[index]
            report["sequential"] = {
                "fit_seconds": fits,
                "fit_cpu_seconds": [r["fit_cpu_seconds"][0] for r in runs],  # type: ignore[index]
                "sum_fit_seconds": round(sum(fits), 2),
                "fit_phase_wall_seconds": round(sum(r["fit_phase_wall_seconds"] for r in runs), 2),  # type: ignore[misc]
                "total_wall_seconds": round(sum(r["total_wall_seconds"] for r in runs), 2),  # type: ignore[misc]
            }
        if "capped" in modes:
            report["capped"] = run_at_once(data, args.trials, cap.threads, args.iters, args.timeout)
        if "uncapped" in modes:
            report["uncapped"] = run_at_once(data, args.trials, None, args.iters, args.timeout)
    if "sequential" in report and "capped" in report:
        bound = 1.2 * report["sequential"]["sum_fit_seconds"] / cores  # type: ignore[index]
        wall = report["capped"]["fit_phase_wall_seconds"]  # type: ignore[index]
        report["target"] = {"capped_fit_phase_wall_seconds": wall, "bound_seconds": round(bound, 2),
                            "met": wall <= bound}  # fmt: skip
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
