"""Serving footprint: import time of the serving app and RSS of an idle ``airflow-mlops serve``.

For each package checkout given with ``--plugins`` (a folder put first on PYTHONPATH, so
one run compares, say, the code before a change and after it; the rounds alternate
between them), on this machine:

- import time: ``python -c "import airflow_mlops.serving.app"`` in ``--imports`` fresh
  interpreters: the median wall time, the same minus a bare ``python -c pass``, and the
  module's cumulative time as ``-X importtime`` reports it;
- the serve command (``python -m airflow_mlops.cli serve``, ``--workers`` 1 by default, the
  prediction log on) against a churn champion: seconds until ``/health/ready`` answers 200
  (the first load of the model included), then the VmRSS of the server's processes after
  ``--idle`` seconds, and again after ``--requests`` requests of 100 rows and one flush of
  the prediction log. The native libraries of pandas, SciPy and scikit-learn mapped into
  the processes (``/proc/<pid>/maps``) are listed beside it.

Two registry shapes (``--shapes``): ``http``, an ``mlflow server`` on the registry (the
production shape: servers reach the registry over HTTP), and ``sqlite``, the serve command
on the SQLite file itself. The champion (and a v2) are trained once, into a temporary
registry, as ``benchmarks/serving.py`` does; only the CLI and ``airflow_mlops.serving.app``
are used from the checkouts measured, so checkouts with other module layouts compare too.

    .venv/bin/python benchmarks/serving_footprint.py --plugins ../before/plugins --plugins plugins
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import SPEC, TOKEN, free_port, request_bodies, train_two_versions, wait_until

HEAVY_LIBRARIES = ("pandas", "scipy", "sklearn")
IMPORT_PROBE = "import airflow_mlops.serving.app"


def checkout_env(base: dict[str, str], plugins: str) -> dict[str, str]:
    """``base`` with ``plugins`` alone on PYTHONPATH (ahead of the venv's own install)."""
    return {**base, "PYTHONPATH": str(Path(plugins).resolve())}


def timed_run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stderr


def import_times(env: dict[str, str], repeat: int) -> dict[str, Any]:
    """Median wall seconds of the import in fresh interpreters, of a bare interpreter, and ``-X importtime``."""
    walls, bare, cumulative = [], [], []
    for _ in range(repeat):
        bare.append(timed_run([sys.executable, "-c", "pass"], env)[0])
        walls.append(timed_run([sys.executable, "-c", IMPORT_PROBE], env)[0])
        _, report = timed_run([sys.executable, "-X", "importtime", "-c", IMPORT_PROBE], env)
        for line in report.splitlines():
            parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] == "airflow_mlops.serving.app":
                cumulative.append(int(parts[1]) / 1e6)
    wall, base = statistics.median(walls), statistics.median(bare)
    return {
        "import_wall_s": round(wall, 3),
        "bare_interpreter_s": round(base, 3),
        "import_minus_bare_s": round(wall - base, 3),
        "importtime_cumulative_s": round(statistics.median(cumulative), 3) if cumulative else None,
    }


def _parent(entry: Path) -> int | None:
    try:
        found = re.search(r"^PPid:\s+(\d+)", (entry / "status").read_text(), re.M)
    except OSError:  # the process ended meanwhile
        return None
    return int(found.group(1)) if found else None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers when there are several)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent(entry)) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return sorted(tree)


def footprint(pid: int) -> dict[str, Any]:
    """VmRSS per process (MiB) and the heavy native libraries mapped into any of them."""
    rss, mapped = {}, set()
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            maps = Path(f"/proc/{member}/maps").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss[member] = round(int(found.group(1)) / 1024, 1) if found else None
        mapped |= {lib for lib in HEAVY_LIBRARIES if f"/site-packages/{lib}/" in maps}
    return {"rss_mib": sum(v for v in rss.values() if v), "per_process_mib": list(rss.values()),
            "heavy_native_libraries_mapped": sorted(mapped)}  # fmt: skip


def post(port: int, body: bytes) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/predict", data=body, method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def serve_once(
    env: dict[str, str], tracking_uri: str, args: argparse.Namespace, body: bytes, log: Any
) -> dict[str, Any]:
    """Start the serve command, time it to ready, read its RSS idle and after requests, stop it."""
    port = free_port()
    command = [sys.executable, "-m", "airflow_mlops.cli", "serve", str(SPEC), "--tracking-uri", tracking_uri,
               "--port", str(port), "--workers", str(args.workers),
               "--log-flush-seconds", str(args.flush_seconds)]  # fmt: skip
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = wait_until(f"http://127.0.0.1:{port}/health/ready", 180)
        result: dict[str, Any] = {"ready_s": round(time.perf_counter() - started, 2), "version": ready["model_version"]}
        time.sleep(args.idle)
        result["idle"] = footprint(server.pid)
        for _ in range(args.requests):
            post(port, body)
        time.sleep(args.flush_seconds + args.idle)  # the prediction log written at least once
        result["after_requests"] = footprint(server.pid)
        return result
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of one checkout."""

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    result: dict[str, Any] = {
        key: median([r["imports"][key] for r in runs])
        for key in ("import_wall_s", "import_minus_bare_s", "importtime_cumulative_s")
    }
    for shape in runs[0]["serve"]:
        served = [r["serve"][shape] for r in runs]
        result[shape] = {
            "ready_s": median([s["ready_s"] for s in served]),
            "idle_rss_mib": median([s["idle"]["rss_mib"] for s in served]),
            "rss_after_requests_mib": median([s["after_requests"]["rss_mib"] for s in served]),
            "heavy_native_libraries_idle": served[-1]["idle"]["heavy_native_libraries_mapped"],
            "heavy_native_libraries_after_requests": served[-1]["after_requests"]["heavy_native_libraries_mapped"],
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", action="append", required=True, help="a checkout's plugins folder (repeat)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each measures every checkout once")
    parser.add_argument("--imports", type=int, default=9, help="fresh interpreters per import measurement")
    parser.add_argument("--shapes", default="http,sqlite", help="registry shapes: http, sqlite or both")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading the RSS")
    parser.add_argument("--requests", type=int, default=200, help="requests of 100 rows before the second reading")
    parser.add_argument("--flush-seconds", type=float, default=2.0, help="--log-flush-seconds of the server")
    parser.add_argument("--output", help="write the results as JSON here too")
    args = parser.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]

    root = Path(tempfile.mkdtemp(prefix="airflow-mlops-footprint-"))
    base = dict(os.environ, AIRFLOW_MLOPS_HOME=str(root / "home"), AIRFLOW_MLOPS_SERVE_TOKEN=TOKEN,
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # fmt: skip
    for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT", "MLFLOW_TRACKING_URI", "PYTHONPATH"):
        base.pop(var, None)
    os.environ["AIRFLOW_MLOPS_HOME"] = base["AIRFLOW_MLOPS_HOME"]
    sqlite_uri = f"sqlite:///{root}/mlflow.db"
    print(f"set-up in {root}: training the champion ...", file=sys.stderr, flush=True)
    train_two_versions(sqlite_uri)
    body = request_bodies(root)[100].read_bytes()
    log = open(root / "servers.log", "w")  # noqa: SIM115 (kept open for the servers' lifetime)
    registry_server = None
    uris = {"sqlite": sqlite_uri}
    if "http" in shapes:
        port = free_port()
        registry_server = subprocess.Popen(
            ["mlflow", "server", "--backend-store-uri", sqlite_uri, "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"], env=base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_until(f"http://127.0.0.1:{port}/health", 120)
        uris["http"] = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "output"}, "runs": []}
    try:
        for round_number in range(args.rounds):
            for plugins in args.plugins:
                env = checkout_env(base, plugins)
                run: dict[str, Any] = {"round": round_number, "plugins": plugins}
                run["imports"] = import_times(env, args.imports)
                run["serve"] = {shape: serve_once(env, uris[shape], args, body, log) for shape in shapes}
                results["runs"].append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    finally:
        if registry_server is not None:
            os.killpg(registry_server.pid, signal.SIGTERM)
            registry_server.wait(timeout=60)
        log.close()
    results["summary"] = {p: summary([r for r in results["runs"] if r["plugins"] == p]) for p in args.plugins}
    print(json.dumps(results["summary"], indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
