"""Shadow scoring's cost on the caller's path: ``airflow-mlops serve`` with ``rollout.shadow`` off and on.

One run, side by side: the churn model (v1 champion, v2 the ``challenger``) trained as
``benchmarks/serving.py`` does, behind an ``mlflow server``; three ``airflow-mlops serve --workers 2``
started together and kept running, with shadow off, at share 0.1 (the default) and at share 1.0,
every prediction logged (the challenger's rows too). The load, 100-row bodies of real rows posted to
``/invocations`` by ``benchmarks/loadgen.py`` (16 keep-alive connections, one request in flight each,
a warm-up first), goes to one server at a time, the three in turn (the order turning each round, a
``--pause`` before each run), for ``--rounds`` rounds: on a
shared machine, whatever else runs changes between rounds more than within one, so each round is a
paired comparison (the other two servers are idle meanwhile). /metrics give the requests the
challenger scored and dropped (one worker's counts).

    .venv/bin/python benchmarks/shadow_serving.py --seconds 6 --warmup 1 --rounds 9 --output shadow.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("serving_benchmark", HERE / "serving.py")
assert _spec is not None and _spec.loader is not None
bench: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SETTINGS: dict[str, dict[str, Any] | None] = {
    "shadow off": None,
    "shadow share 0.1": {"enabled": True, "share": 0.1},
    "shadow share 1.0": {"enabled": True, "share": 1.0},
}


def shadow_counts(port: int) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {bench.TOKEN}"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as answer:
        text = answer.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("airflow_mlops_shadow_requests_total"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = int(line.rsplit(" ", 1)[1])
    return counts  # one worker's counts (the one that answered /metrics)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pause", type=float, default=6.0, help="seconds between two runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="airflow-mlops-shadow-bench-"))
    env = dict(os.environ)
    env.update(
        AIRFLOW_MLOPS_HOME=str(root / "home"),
        MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db",
        AIRFLOW_MLOPS_SERVE_TOKEN=bench.TOKEN,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
        env.pop(var, None)
    os.environ.update({k: env[k] for k in ("AIRFLOW_MLOPS_HOME", "MLFLOW_TRACKING_URI")})
    print(f"set-up in {root}: training v1 and v2 ...", flush=True)
    bench.train_two_versions(env["MLFLOW_TRACKING_URI"])
    body = bench.request_bodies(root)[100]

    from airflow_mlops.core.registry.client import CHALLENGER_ALIAS, Registry

    registry = Registry(env["MLFLOW_TRACKING_URI"])
    registry.client.set_registered_model_alias("churn_classifier", CHALLENGER_ALIAS, "2")
    specs = {}
    for name, shadow in SETTINGS.items():
        raw = yaml.safe_load(bench.SPEC.read_text())
        if shadow is not None:
            raw["rollout"] = {"shadow": shadow}
        path = root / f"{name.replace(' ', '_')}.yaml"
        path.write_text(yaml.safe_dump(raw))
        specs[name] = path

    logs = open(root / "servers.log", "w")  # noqa: SIM115 (kept open for the servers' lifetime)
    registry_port = bench.free_port()
    tracking = subprocess.Popen(
        ["mlflow", "server", "--backend-store-uri", env["MLFLOW_TRACKING_URI"], "--host", "127.0.0.1", "--port",
         str(registry_port), "--workers", "1"],
        env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    results: dict[str, Any] = {"seconds": args.seconds, "workers": args.workers, "rows_per_request": 100, "runs": []}
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        bench.wait_until(f"http://127.0.0.1:{registry_port}/health", 120)
        env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{registry_port}"
        for name, path in specs.items():
            port = bench.free_port()
            servers[name] = port, subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow-mlops"), "serve", str(path), "--port", str(port),
                 "--workers", str(args.workers)],
                env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        for port, _ in servers.values():
            bench.wait_until(f"http://127.0.0.1:{port}/health/ready", 120)
        time.sleep(2.0)  # the challenger loads right after the champion
        names = list(servers)
        for round_ in range(1, args.rounds + 1):
            # The order turns each round, and a pause lets the last server's log flushes and shadow queue
            # settle: neither lands on the same setting every time.
            for name in names[(round_ - 1) % len(names) :] + names[: (round_ - 1) % len(names)]:
                port = servers[name][0]
                time.sleep(args.pause)
                run = bench.load(port, body, args.seconds, args.warmup, bench.TOKEN)
                run.update(setting=name, round=round_, shadow_one_worker=shadow_counts(port))
                results["runs"].append(run)
                print(f"round {round_} {name:>17}: {run['requests_per_second']:>8.1f} req/s  p50 {run['p50_ms']:.2f} ms"
                      f"  p99 {run['p99_ms']:.2f} ms  errors {run['errors']}  shadow {run['shadow_one_worker']}",
                      flush=True)  # fmt: skip
    finally:
        for _, server in servers.values():
            os.killpg(server.pid, signal.SIGTERM)
        for _, server in servers.values():
            server.wait(60)
        os.killpg(tracking.pid, signal.SIGTERM)
        tracking.wait(60)
        logs.close()
    import statistics

    off = {r["round"]: r["p99_ms"] for r in results["runs"] if r["setting"] == "shadow off"}
    for name in SETTINGS:
        mine = [r for r in results["runs"] if r["setting"] == name]
        ratios = [r["p99_ms"] / off[r["round"]] for r in mine]
        results[name] = {
            "p99_ms": [r["p99_ms"] for r in mine],
            "median_p99_ms": statistics.median(r["p99_ms"] for r in mine),
            "median_requests_per_second": statistics.median(r["requests_per_second"] for r in mine),
            "p99_ratio_to_off_per_round": [round(x, 3) for x in ratios],
            "median_p99_ratio_to_off": round(statistics.median(ratios), 3),
        }
        summary = results[name]
        print(f"{name:>17}: median p99 {summary['median_p99_ms']:.2f} ms, median ratio to off "
              f"{summary['median_p99_ratio_to_off']:.3f}, median {summary['median_requests_per_second']:.0f} req/s",
              flush=True)  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
