"""The model pages' API: answer times for many pipelines, versions and monitoring runs; the plugin's import cost.

Fills an MLflow SQLite store with ``--pipelines`` registered models of ``--versions`` versions
each (tags as the training DAG writes them, a promotion history of one move per 5 versions)
and ``--runs`` monitoring runs per pipeline (a PSI metric per feature of the example spec
plus the decay metrics), starts ``mlflow server`` on it, and times in this process, through
the plugin's FastAPI app (``ui.web.create_app``; Airflow's state is a fixed ``StaticState``):

- ``GET /api/overview`` (every pipeline: champion, metric vs threshold, drift, alerts);
- ``GET /api/pipelines/<name>/page`` (timeline of all versions, champion card, 200 monitoring runs);

each ``--repeat`` times cold (the app's MLflow cache emptied first: every read goes to the
server) and warm (within the cache's TTL). Then the import of ``airflow_mlops.ui.plugin``
(what Airflow's processes load at start-up) in fresh interpreters with Airflow imported
first: the added time and whether any heavy module came with it.

    .venv/bin/python benchmarks/ui_page.py --pipelines 10 --versions 50 --runs 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
HEAVY = ("mlflow", "sklearn", "pandas", "numpy", "pyarrow", "great_expectations", "boto3", "onnx", "scipy")


def fill_store(db: str, pipelines: int, versions: int, runs: int, features: list[str]) -> None:
    """Registered models, versions and monitoring runs written straight into the SQLite store."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    now = int(time.time() * 1000)
    for p in range(pipelines):
        name = f"model_{p:02d}"
        client.create_registered_model(name)
        train = client.create_experiment(f"pipe{p:02d}")
        history = []
        for v in range(1, versions + 1):
            run = client.create_run(train, run_name=f"training {v}")
            client.log_param(run.info.run_id, "estimator", "hist_gradient_boosting")
            tags = {
                "test_roc_auc": f"{0.75 + v / 1000:.6f}",
                "test_recall": f"{0.6 + (v % 7) / 100:.6f}",
                "gate": "passed" if v % 4 else "failed",
                "gate_reasons": "all gates passed" if v % 4 else "roc_auc did not beat the champion",
                "onnx_parity": "passed",
                "onnx_uri": f"runs:/{run.info.run_id}/onnx/model.onnx",
                "data_fingerprint": f"{v:016x}",
                "airflow.run_id": f"scheduled__{v}",
            }
            client.create_model_version(
                name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
            )
            if v % 5 == 1:
                history.append({"id": f"{p}-{v}", "from_version": str(v - 5) if v > 5 else None,
                                "to_version": str(v), "at": f"2026-11-{1 + v % 28:02d}T10:00:00+00:00",
                                "by": "airflow", "reason": "gate passed"})  # fmt: skip
        client.set_registered_model_tag(name, "promotion_history", json.dumps(history[-20:]))
        client.set_registered_model_alias(name, "champion", history[-1]["to_version"])
        monitoring = client.create_experiment(f"pipe{p:02d}_monitoring")
        for r in range(runs):
            run = client.create_run(monitoring, run_name=f"m{r}", start_time=now - (runs - r) * 3_600_000)
            metrics = [Metric(f"psi_{f}", 0.01 * ((r + i) % 30), now, 0) for i, f in enumerate(features)]
            metrics += [Metric(k, val, now, 0) for k, val in
                        (("prediction_psi", 0.05), ("labeled_rows", 40.0), ("current_rows", 200.0),
                         ("labeled_roc_auc", 0.8), ("performance_decay", 0.0), ("drifted_features", 0.0))]  # fmt: skip
            client.log_batch(
                run.info.run_id, metrics=metrics, tags=[RunTag("retrain", "no"), RunTag("model_version", "1")]
            )
            client.set_terminated(run.info.run_id)


def _spec_text(example: str, p: int) -> str:
    text = Path(example).read_text()
    return text.replace("name: churn", f"name: pipe{p:02d}", 1).replace("churn_classifier", f"model_{p:02d}")


def time_requests(client: Any, app: Any, url: str, repeat: int) -> dict[str, float]:
    cold, warm = [], []
    for _ in range(repeat):
        app.state.pages.forget()
        start = time.perf_counter()
        answer = client.get(url)
        cold.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
        start = time.perf_counter()
        client.get(url)
        warm.append(time.perf_counter() - start)
    return {
        "cold_median_ms": round(1000 * statistics.median(cold), 1),
        "cold_max_ms": round(1000 * max(cold), 1),
        "warm_median_ms": round(1000 * statistics.median(warm), 1),
        "warm_max_ms": round(1000 * max(warm), 1),
        "bytes": len(answer.content),
    }


def plugin_import(rounds: int) -> dict[str, Any]:
    """Seconds the plugin module adds to an interpreter that has Airflow imported; heavy modules it brings."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}"}
    probe = (
        "import sys,time; import airflow.plugins_manager; t=time.perf_counter(); import airflow_mlops.ui.plugin; "
        "d=time.perf_counter()-t; import json; "
        f"print(json.dumps([d, sorted(m for m in {HEAVY!r} if m in sys.modules)]))"
    )
    added, heavy = [], set()
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        seconds, modules = json.loads(out.stdout.strip().splitlines()[-1])
        added.append(seconds)
        heavy.update(modules)
    return {"added_median_ms": round(1000 * statistics.median(added), 1), "heavy_modules": sorted(heavy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, default=10)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--imports", type=int, default=5)
    args = parser.parse_args()

    from tests.conftest import EXAMPLE_SPEC

    from airflow_mlops.devstack.processes import free_port
    from airflow_mlops.spec import load_spec

    features = load_spec(EXAMPLE_SPEC).data.features.all
    work = Path(tempfile.mkdtemp(prefix="airflow-mlops-ui-bench-"))
    db = str(work / "mlflow.db")
    start = time.perf_counter()
    fill_store(db, args.pipelines, args.versions, args.runs, features)
    filled = time.perf_counter() - start
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(work / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import httpx

        uri = f"http://127.0.0.1:{port}"
        for _ in range(180):
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        specs = work / "specs"
        specs.mkdir()
        for p in range(args.pipelines):
            (specs / f"pipe{p:02d}.yaml").write_text(_spec_text(str(EXAMPLE_SPEC), p))
        os.environ.update(
            MLFLOW_TRACKING_URI=uri, AIRFLOW_MLOPS_PIPELINES_DIR=str(specs), AIRFLOW_MLOPS_HOME=str(work / "home")
        )
        from fastapi.testclient import TestClient

        from airflow_mlops.ui.airflow_state import StaticState
        from airflow_mlops.ui.web import create_app

        app = create_app(require_user=False, airflow_state=StaticState())
        client = TestClient(app)
        client.get("/api/overview")  # the first request imports the page's modules
        result = {
            "shape": {"pipelines": args.pipelines, "versions": args.versions, "monitoring_runs": args.runs,
                      "features": len(features), "store_filled_s": round(filled, 1)},
            "overview": time_requests(client, app, "/api/overview", args.repeat),
            "pipeline_page": time_requests(client, app, "/api/pipelines/pipe00/page", args.repeat),
            "plugin_import": plugin_import(args.imports),
        }  # fmt: skip
        page = client.get("/api/pipelines/pipe00/page").json()
        result["pipeline_page"]["versions_shown"] = len(page["registry"]["timeline"]["versions"])
        result["pipeline_page"]["monitoring_runs_shown"] = len(page["monitoring"]["runs"])
        print(json.dumps(result, indent=2))
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
