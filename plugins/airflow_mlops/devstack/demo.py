"""The demo loop, driven through Airflow's REST API on the embedded stack.

1. land a labeled day-1 batch -> the training DAG runs (data arrival) -> champion v1;
2. land a drifted batch for scoring -> scoring DAG -> monitoring DAG finds drift ->
   drift Asset event -> the training DAG runs again -> a new version and a gate decision;
3. start ``airflow-mlops serve`` on the champion and query it with real rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops import layout
from airflow_mlops.core.contracts import PromotionRecord
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.devstack import install_check
from airflow_mlops.devstack.rest import AirflowClient
from airflow_mlops.devstack.stack import Stack, StackConfig
from airflow_mlops.spec import load_spec

SPEC = "churn.yaml"  # in the stack's pipelines folder
RUN_TIMEOUT = 900.0


@dataclass
class DemoResult:
    runs: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    champion: str | None = None
    drift: dict[str, Any] | None = None
    retrain_gate: dict[str, Any] | None = None
    promotions: list[PromotionRecord] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    serving: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


class DemoLoop:
    """One pass of the loop against a running stack."""

    def __init__(
        self,
        stack: Stack,
        rows: int = 5000,
        say: Callable[[str], None] = print,
        keep_serving: bool = False,
        spec_file: str = SPEC,
        serving: tuple[str, str] | None = None,
    ) -> None:
        """``serving``: (url, token) of a serving app the stack runs itself (the production
        stack's ``serving`` role); by default the demo starts its own on a spare port."""
        self.stack = stack
        self.cfg = stack.config
        self.rows = rows
        self.say = say
        # This process lands files, so it must resolve folders exactly as the stack's processes do.
        os.environ.update(self.cfg.mlops_env())
        self.spec_path = self.cfg.pipelines_folder / spec_file
        self.spec = load_spec(self.spec_path)
        self.dags = {kind: f"{self.spec.name}_{kind}" for kind in ("training", "scoring", "monitoring")}
        self.result = DemoResult()
        self.client = AirflowClient(self.cfg.airflow_url, "admin", stack.admin_password())
        self._seen: dict[str, set[str]] = {}
        self.serving: subprocess.Popen[bytes] | None = None
        self.external_serving = serving
        self.keep_serving = keep_serving

    def run(self) -> DemoResult:
        start = time.monotonic()
        try:
            self._prepare()
            self._first_training()
            self._drift_and_retraining()
            self._serve()
            if not self.keep_serving:
                self.stop_serving()
        except Exception as exc:  # report, do not hide: the summary lists it and the exit code is 1
            self.result.failures.append(f"{type(exc).__name__}: {exc}")
        self._collect_registry()
        self.result.seconds = time.monotonic() - start
        return self.result

    def land_train_serve_score(self) -> DemoResult:
        """The short path a user takes with their own pipeline: labeled rows land -> training ->
        champion -> the serving app answers real rows -> rows land for scoring -> scored and logged."""
        start = time.monotonic()
        try:
            self._prepare()
            self._first_training()
            self._serve()
            landed = self._land("scoring", dt.date(2026, 11, 9), seed=2, drift=0.0)
            self.say(f"landed {landed.rows} rows for scoring: {landed.uri}")
            run = self._await_run("scoring", "asset_triggered")
            if run["state"] != "success":
                raise RuntimeError(f"scoring run {run['dag_run_id']} ended {run['state']}")
        except Exception as exc:
            self.result.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.stop_serving()
        self._collect_registry()
        self.result.seconds = time.monotonic() - start
        return self.result

    # -- steps ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.say("waiting for the DAGs to be parsed ...")
        self.client.wait_for_dags(list(self.dags.values()), timeout=180)
        self._wait_idle()
        self._seen = {dag: {r["dag_run_id"] for r in self.client.dag_runs(dag)} for dag in self.dags.values()}

    def _first_training(self) -> None:
        landed = self._land("training", dt.date(2026, 11, 2), seed=1, drift=0.0)
        self.say(f"landed {landed.rows} labeled rows: {landed.uri}")
        run = self._await_run("training", "asset_triggered")
        if run["state"] != "success":
            raise RuntimeError(f"first training run {run['dag_run_id']} ended {run['state']}")

    def _drift_and_retraining(self) -> None:
        landed = self._land("scoring", dt.date(2026, 11, 9), seed=2, drift=0.6)
        self.say(f"landed {landed.rows} drifted rows for scoring: {landed.uri}")
        for kind in ("scoring", "monitoring"):
            run = self._await_run(kind, "asset_triggered")
            if run["state"] != "success":
                raise RuntimeError(f"{kind} run {run['dag_run_id']} ended {run['state']}")
        monitoring = self.result.runs[-1]
        self.result.drift = self.client.xcom(self.dags["monitoring"], monitoring["run_id"], "drift_check")
        if not (self.result.drift or {}).get("drift_detected"):
            raise RuntimeError(f"monitoring did not detect drift: {self.result.drift}")
        retrain = self._await_run("training", "asset_triggered")
        if retrain["state"] != "success":
            raise RuntimeError(f"retraining run {retrain['dag_run_id']} ended {retrain['state']}")
        self.result.retrain_gate = self.client.xcom(self.dags["training"], retrain["dag_run_id"], "model.gate")

    def _serve(self, port: int | None = None) -> None:
        """Start the serving app on the champion and send it real rows, as a user would."""
        import httpx

        if self.external_serving is not None:
            url, token = self.external_serving
            self.say(f"asking the stack's serving app at {url} ...")
        else:
            url, token = self._start_serving(port)
        deadline = time.monotonic() + 120
        while True:
            try:
                ready = httpx.get(f"{url}/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or (self.serving is not None and self.serving.poll() is not None):
                raise RuntimeError(
                    f"the serving app did not become ready; see {self.cfg.root / 'logs' / 'serving.log'}"
                )
            time.sleep(0.5)
        landed = synthetic.land_batch(self.spec.data.generator or "churn", str(self.cfg.root / "demo-requests"),
                                      dt.date(2026, 11, 16), 5, seed=3, include_label=False,
                                      label=self.spec.data.label)  # fmt: skip
        import pandas as pd

        rows = json.loads(pd.read_parquet(landed.uri).to_json(orient="records"))
        started = time.perf_counter()
        answer = httpx.post(f"{url}/v1/predict", json={"instances": rows}, headers={"Authorization": f"Bearer {token}"})
        latency = (time.perf_counter() - started) * 1000
        answer.raise_for_status()
        body = answer.json()
        self.result.serving = {"url": url, "token": token, "model_version": body["model_version"],
                               "request_id": body["request_id"], "predictions": body["predictions"],
                               "scores": [round(x, 3) for x in body.get("scores", [])], "latency_ms": round(latency, 1),
                               "example": rows[0], "rows": rows,
                               "probabilities": body.get("probabilities")}  # fmt: skip
        self.say(f"  served v{body['model_version']}: {len(rows)} rows answered in {latency:.1f} ms")

    def _start_serving(self, port: int | None) -> tuple[str, str]:
        with socket.socket() as probe:
            probe.bind((self.cfg.host, 0))
            port = port or int(probe.getsockname()[1])
        token = secrets.token_hex(16)
        log = open(self.cfg.root / "logs" / "serving.log", "ab")  # noqa: SIM115 (the process's lifetime)
        self.serving = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow-mlops"), "serve", str(self.spec_path), "--host",
             self.cfg.host, "--port", str(port), "--tracking-uri", self.cfg.mlflow_url],
            env={**self.cfg.environment(), "AIRFLOW_MLOPS_SERVE_TOKEN": token}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://{self.cfg.host}:{port}"
        self.say(f"starting the serving app at {url} ...")
        return url, token

    def stop_serving(self) -> None:
        """SIGTERM the serving app (it writes its prediction log) and wait for it."""
        if self.serving is not None and self.serving.poll() is None:
            os.killpg(self.serving.pid, signal.SIGTERM)
            try:
                self.serving.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.serving.pid, signal.SIGKILL)

    # -- helpers -------------------------------------------------------------------------------
    def _land(self, kind: str, day: dt.date, seed: int, drift: float) -> synthetic.LandedBatch:
        inbox = layout.landing_dir(self.spec.name, kind)
        return synthetic.land_batch(self.spec.data.generator or "churn", inbox, day, self.rows, seed=seed, drift=drift)

    def _await_run(self, kind: str, run_type: str) -> dict[str, Any]:
        dag_id = self.dags[kind]
        self.say(f"waiting for a {run_type} run of {dag_id} ...")
        run = self.client.wait_for_new_run(dag_id, self._seen[dag_id], RUN_TIMEOUT, run_type=run_type)
        self._seen[dag_id].add(run["dag_run_id"])
        tasks = {t["task_id"]: t["state"] for t in self.client.task_instances(dag_id, run["dag_run_id"])}
        seconds = _duration(run)
        triggered_by = self.client.triggering_assets(dag_id, run["dag_run_id"])
        self.result.runs.append(
            {"dag_id": dag_id, "run_id": run["dag_run_id"], "run_type": run["run_type"], "state": run["state"],
             "seconds": seconds, "tasks": tasks, "triggered_by": triggered_by}
        )  # fmt: skip
        self.say(f"  {dag_id} {run['dag_run_id']}: {run['state']} in {seconds:.0f}s, triggered by {triggered_by}")
        return run

    def _wait_idle(self, timeout: float = 300.0) -> None:
        """Let calendar runs created at start-up (nothing to do yet: they skip) finish first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [
                r["dag_run_id"]
                for dag in self.dags.values()
                for r in self.client.dag_runs(dag)
                if r["state"] in ("queued", "running")
            ]
            if not busy:
                return
            time.sleep(2)
        raise TimeoutError("runs created at start-up did not finish")

    def _collect_registry(self) -> None:
        registry = Registry(self.cfg.mlflow_url)
        name = self.spec.registered_model_name
        try:
            mlflow_client = registry.client
            versions = mlflow_client.search_model_versions(f"name='{name}'")
        except Exception as exc:
            self.result.failures.append(f"cannot read the MLflow registry: {exc}")
            return
        for version in sorted(versions, key=lambda v: int(v.version)):
            self.result.versions.append(
                {"version": version.version, "gate": version.tags.get("gate"),
                 "reasons": version.tags.get("gate_reasons"), "test_roc_auc": version.tags.get("test_roc_auc"),
                 "run": version.tags.get("airflow.run_id"), "winner": version.tags.get("winner_trial"),
                 "onnx_max_abs_diff": version.tags.get("onnx_max_abs_diff")}
            )  # fmt: skip
        current = registry.champion(name)
        self.result.champion = str(current.version) if current else None
        if current:
            self.result.promotions = registry.promotion_history(name)


def _duration(run: dict[str, Any]) -> float:
    if not run.get("start_date") or not run.get("end_date"):
        return 0.0
    start = dt.datetime.fromisoformat(run["start_date"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def format_summary(result: DemoResult, stack: Stack, kept_running: bool) -> str:
    cfg = stack.config
    lines = ["", "=== airflow-mlops demo summary ===", f"status: {'OK' if result.ok else 'FAILED'}"]
    lines.append(f"loop wall time: {result.seconds:.0f}s")
    lines.append("runs:")
    for run in result.runs:
        cause = ", ".join(run["triggered_by"]) or run["run_type"]
        lines.append(f"  {run['dag_id']:<18} {run['state']:<8} {run['seconds']:>4.0f}s  triggered by {cause}")
    lines.append("model versions:")
    for v in result.versions:
        lines.append(
            f"  v{v['version']}: {v.get('winner')} test_roc_auc={v['test_roc_auc']} "
            f"onnx_parity={v.get('onnx_max_abs_diff')} gate={v['gate']} ({v['reasons']})"
        )
    lines.append(f"champion: v{result.champion}")
    for record in result.promotions:
        lines.append(
            f"  promoted v{record['from_version']} -> v{record['to_version']} at {record['at']} by {record['by']}"
        )
    if result.drift:
        lines.append(f"drift (PSI, threshold {result.drift['psi_threshold']}): {result.drift['scores']}")
        lines.append(f"  drifted features: {result.drift['drifted_features']}")
    if result.retrain_gate:
        verdict = "promoted" if result.retrain_gate["promote"] else "kept the champion"
        lines.append(f"retraining decision: {verdict}: {'; '.join(result.retrain_gate['reasons'])}")
    if result.serving:
        served = result.serving
        lines.append(f"serving app: {served['url']} answered v{served['model_version']} in {served['latency_ms']} ms: "
                     f"predictions {served['predictions']}, scores {served['scores']}")  # fmt: skip
    for failure in result.failures:
        lines.append(f"FAILURE: {failure}")
    lines.append(f"runtime folder: {cfg.root} (logs in {cfg.root / 'logs'})")
    if kept_running:
        lines.append(f"Airflow UI: {cfg.airflow_url}  (user admin, password {stack.admin_password()})")
        lines.append(f"MLflow UI:  {cfg.mlflow_url}")
        if result.serving:
            example = json.dumps({"instances": [result.serving["example"]]})
            lines.append(f"serving:    curl -s {result.serving['url']}/v1/predict -H 'Authorization: Bearer "
                         f"{result.serving['token']}' -d '{example}'")  # fmt: skip
        lines.append("services keep running; press Ctrl+C to stop them")
    else:
        lines.append(f"services stopped; run with --keep-running to browse {cfg.airflow_url} and {cfg.mlflow_url}")
    return "\n".join(lines)


def run_demo(root: Path, keep_running: bool, airflow_port: int, mlflow_port: int, rows: int) -> int:
    from airflow_mlops.devstack.stack import read_state, reset

    def _terminate(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")  # unwinds into stack.stop() below

    signal.signal(signal.SIGTERM, _terminate)
    previous = read_state(root)
    if previous is not None and previous.running():  # a live stack (`stack up`, another demo): not ours to wipe
        driver = previous.driver.pid if previous.driver else "?"
        who = "`airflow-mlops stack up`" if previous.detached else f"another demo (pid {driver})"
        print(f"demo: {who} runs a stack in {root}; stop it (`airflow-mlops stack down --root {root}`) "
              "or pass another --root", file=sys.stderr)  # fmt: skip
        return 1
    reset(root)  # stops what a killed demo left running, then wipes the folder
    config = StackConfig(root=root, airflow_port=airflow_port, mlflow_port=mlflow_port)
    install_check.warn(config)
    print(f"starting airflow standalone on :{airflow_port} and MLflow on :{mlflow_port} under {root} ...")
    stack = Stack(config).start()
    loop = DemoLoop(stack, rows=rows, keep_serving=keep_running)
    try:
        result = loop.run()
        print(format_summary(result, stack, keep_running))
        if keep_running:
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if result.ok else 1
    finally:
        loop.stop_serving()
        stack.stop()
